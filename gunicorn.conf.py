"""The production web server's configuration: `gunicorn studysite.wsgi` reads it from the project
folder. docs/deployment.md says how to run it behind the HTTPS proxy and how to reload it gracefully
(`kill -HUP` of the master process: new workers with the new code take over the listening socket, the
old ones finish the requests they hold, and no queued connection is dropped).

GUNICORN_BIND and WEB_CONCURRENCY (gunicorn's own variable) override the address and the number of
workers; command-line options override everything here.
"""

import os

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
# Sync workers: every request is a few milliseconds of CPU, and the proxy buffers slow clients.
# One per core, and one more to cover a worker waiting on the database: more only take turns on the
# cores (on two cores, 3 workers served 100 participants at 6.7 ms of CPU per rating, 5 at 7.9).
workers = int(os.environ.get("WEB_CONCURRENCY", len(os.sched_getaffinity(0)) + 1))
worker_class = "sync"
# Connections wait here while every worker is busy (a crowd arriving, a reload under way).
backlog = 2048
# A request that takes longer than this is stuck: its worker is replaced.
timeout = 30
# On reload or stop, a worker finishes the request it holds within this time.
graceful_timeout = 30
# Each worker imports the application itself, so a reload (SIGHUP) loads the new code.
preload_app = False
# Worker heartbeats in memory, not on a disk that may stall.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None
# The proxy keeps the access log; the server's log gets errors only (participants' links carry
# their recruitment ids).
accesslog = None
errorlog = "-"

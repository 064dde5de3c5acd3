"""The study under a crowd: N concurrent participants through gunicorn and PostgreSQL (goal: at most
7 ms of server CPU per rating, and grade posts answered within 150 ms at the 95th percentile, with 100
participants who think 3 s per answer, on two cores).

    python benchmarks/study_load.py                       # 100 participants, 40 sketches + 3 checks each
    python benchmarks/study_load.py --participants 50 --reload-every 20   # graceful reloads mid-run
    python benchmarks/study_load.py --url http://127.0.0.1:8000 --study pilot   # a server already running

By default it starts a throwaway PostgreSQL cluster and gunicorn (with the project's gunicorn.conf.py)
on loopback, makes a study, and runs the participants through the real participant path, as a browser
does: the recruitment link, consent with its CSRF token, instructions, the first trial page, then per
sketch a think time and the grade post (whose response is the next sketch's page, its image inside),
and the finish page. It prints how many finished, the grades acknowledged (the next sketch's page,
or the redirect to the finish page) against those stored, duplicates, lost grades,
pages that showed the wrong sketch, 5xx and connection errors, p50/p95/p99 per request kind, ratings/s,
and the server CPU (gunicorn and PostgreSQL processes, measured from /proc) per stored rating. With
--url it measures only the client side (and what is stored, when DATABASE_URL names that server's
database).
"""

import argparse
import concurrent.futures
import glob
import http.client
import os
import random
import re
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path
from urllib.parse import urlencode, urlsplit

from _common import ROOT, data_dir

TICKS = os.sysconf("SC_CLK_TCK")
FIELD = re.compile(r'<input type="hidden" name="(\w+)" value="([^"]*)"')
SKETCH = re.compile(r'<img id="sketch"[^>]*\ssrc="data:image/png;base64,[^"]+"')
POSITION_FIELD = "position"


# --- the servers --------------------------------------------------------------------------------

def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def as_postgres(command):
    """PostgreSQL's tools refuse to run as root: run them as the postgres user then."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


def postgres_bin():
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]))
    if found:
        return Path(found[-1])
    initdb = shutil.which("initdb")
    if not initdb:
        sys.exit("PostgreSQL is not installed (apt-get install postgresql)")
    return Path(initdb).parent


class Postgres:
    """A throwaway cluster on loopback, in a temporary folder."""

    def __init__(self, folder):
        self.bin, self.data, self.port = postgres_bin(), folder / "pgdata", free_port()
        folder.mkdir(exist_ok=True)
        if os.geteuid() == 0:
            folder.parent.chmod(0o755)  # the postgres user must reach its folder
            shutil.chown(folder, "postgres")
        subprocess.run(as_postgres([self.bin / "initdb", "-D", self.data, "-A", "trust", "-U", "postgres"]),
                       check=True, capture_output=True)
        options = f"-p {self.port} -k {folder} -c listen_addresses=127.0.0.1 -c max_connections=200"
        subprocess.run(as_postgres([self.bin / "pg_ctl", "-D", self.data, "-o", options, "-l", folder / "log",
                                    "-w", "start"]), check=True, capture_output=True)
        subprocess.run(as_postgres([self.bin / "createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U",
                                    "postgres", "sketchlab"]), check=True, capture_output=True)
        self.url = f"postgres://postgres@127.0.0.1:{self.port}/sketchlab"

    @property
    def pid(self):
        return int((self.data / "postmaster.pid").read_text().split()[0])

    def stop(self):
        subprocess.run(as_postgres([self.bin / "pg_ctl", "-D", self.data, "-m", "fast", "stop"]), capture_output=True)


class Gunicorn:
    """The study served by gunicorn with the project's configuration, on a free loopback port."""

    def __init__(self, env, probe_path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", ROOT / "gunicorn.conf.py", "--bind", f"127.0.0.1:{self.port}",
             "studysite.wsgi"], cwd=ROOT, env=env)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if request_once("127.0.0.1", self.port, "GET", probe_path, {}, None)[0] == 200:
                    break
            except OSError:
                time.sleep(0.2)
        else:
            raise RuntimeError("gunicorn did not start")
        # Every worker imports the application as it starts: wait for them all, so that their start
        # is not counted as serving participants.
        before = cpu_seconds(self.process.pid)
        while time.sleep(1) or cpu_seconds(self.process.pid) - before > 0.05:
            before = cpu_seconds(self.process.pid)

    def reload(self):
        self.process.send_signal(signal.SIGHUP)

    def stop(self):
        self.process.terminate()
        self.process.wait(30)


def cpu_seconds(root_pid):
    """CPU time of a process and of its children, the exited ones included (counted into the
    parent's cutime/cstime when it reaps them)."""
    def times(pid):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0, None
        return sum(int(f) for f in fields[11:15]), int(fields[1])  # utime stime cutime cstime; ppid

    total = times(root_pid)[0]
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            ticks, parent = times(entry)
            if parent == root_pid:
                total += ticks
    return total / TICKS


# --- the study ----------------------------------------------------------------------------------

def setup_django(database_url):
    os.environ.update(DATABASE_URL=database_url, DJANGO_SETTINGS_MODULE="studysite.settings")
    import django

    django.setup()


def make_study(slug, items, checks):
    """A study of real test drawings and, as stand-ins for generated sketches, other test drawings of
    the same categories: to the server they are stimuli like any others."""
    from generator.data import load_category
    from ratings.stimuli import write_stimulus
    from ratings.attention import ensure_attention_stimuli
    from ratings.models import Condition, Stimulus, Study

    folder, categories = data_dir()
    study = Study.objects.create(slug=slug, items_per_participant=items, attention_checks=checks)
    condition = Condition.objects.create(study=study, checkpoint_sha256="0" * 64, checkpoint_name="stand-in.pt",
                                         temperature=0.5, mode=Condition.Mode.UNCONDITIONAL)
    for category in categories[:2]:
        test = load_category(category, folder)["test"]
        # A pool of up to twice a participant's items, real and generated alike.
        for index in range(min(items, len(test) // 2)):
            write_stimulus(study, test[index], category=category, source=Stimulus.Source.REAL,
                           dataset_file=f"{category}.npz", dataset_split="test", dataset_index=index)
            write_stimulus(study, test[-1 - index], category=category, source=Stimulus.Source.GENERATED,
                           condition=condition, seed=0, sample_index=index, ended=True)
    ensure_attention_stimuli(study)
    return study


def stored(slug, pids):
    """(ratings stored, duplicates, acknowledged grades that are not stored) of these participants."""
    from django.db.models import Count

    from ratings.models import Rating

    ratings = Rating.objects.filter(participant__study__slug=slug, participant__prolific_pid__in=list(pids))
    count = ratings.count()
    duplicates = sum(n - 1 for n in ratings.values("participant", "position").annotate(n=Count("pk"))
                     .values_list("n", flat=True) if n > 1)
    have = set(ratings.values_list("participant__prolific_pid", "position"))
    lost = sum(1 for pid, positions in pids.items() for position in positions if (pid, position) not in have)
    return count, duplicates, lost


# --- the participants ---------------------------------------------------------------------------

def request_once(host, port, method, path, cookies, body, headers=None):
    connection = http.client.HTTPConnection(host, port, timeout=60)
    try:
        all_headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items()), **(headers or {})}
        if body is not None:
            all_headers["Content-Type"] = "application/x-www-form-urlencoded"
        connection.request(method, path, body, all_headers)
        response = connection.getresponse()
        content = response.read()
        for header in response.headers.get_all("Set-Cookie") or []:
            name, _, rest = header.partition("=")
            value = rest.split(";", 1)[0]
            if "max-age=0" in header.lower():
                cookies.pop(name, None)
            else:
                cookies[name] = value
        return response.status, response.headers, content
    finally:
        connection.close()


class Tally:
    """Everything the participants saw, shared by their threads."""

    def __init__(self):
        self.lock = threading.Lock()
        self.latency = defaultdict(list)  # request kind -> seconds
        self.server_errors = defaultdict(int)  # request kind -> 5xx answers
        self.unavailable = 0  # of which 503 (the self-retrying page)
        self.connection_errors = 0
        self.other_errors = defaultdict(int)  # "kind status" -> count
        self.wrong_item = 0
        self.finished = 0
        self.acknowledged = {}  # pid -> positions whose grade post was answered by a redirect

    def record(self, kind, seconds, status):
        with self.lock:
            self.latency[kind].append(seconds)
            if status >= 500:
                self.server_errors[kind] += 1
                self.unavailable += status == 503


class Participant:
    def __init__(self, root, slug, think, tally, rng):
        parts = urlsplit(root)
        self.host, self.port, self.origin = parts.hostname, parts.port or 80, f"{parts.scheme}://{parts.netloc}"
        self.slug, self.think, self.tally, self.rng = slug, think, tally, rng
        self.cookies, self.pid = {}, "LOAD-" + secrets.token_hex(6)
        self.tally.acknowledged[self.pid] = []

    def url(self, page):
        return f"/s/{self.slug}/" + ("" if page == "landing" else f"{page}/")

    def request(self, kind, method, path, data=None):
        """One request; (status, Location path, body). 503 answers and dropped connections are
        retried the way the study's retry page and a participant pressing reload do."""
        for _ in range(30):
            body = urlencode(data) if data is not None else None
            headers = {"Origin": self.origin} if data is not None else {}
            started = time.perf_counter()
            try:
                status, response_headers, content = request_once(self.host, self.port, method, path, self.cookies,
                                                                 body, headers)
            except (OSError, http.client.HTTPException):
                with self.tally.lock:
                    self.tally.connection_errors += 1
                time.sleep(1)
                if method == "POST":
                    return None, None, b""  # not known whether it was stored: the next page says
                continue
            self.tally.record(kind, time.perf_counter() - started, status)
            if status == 503:
                time.sleep(float(response_headers.get("Retry-After", 1)))
                if method == "POST":
                    return None, None, b""
                continue
            if status not in (200, 302):
                with self.tally.lock:
                    self.tally.other_errors[f"{kind} {status}"] += 1
            location = urlsplit(response_headers.get("Location", "")).path or None
            return status, location, content
        raise RuntimeError(f"{kind}: the server kept failing")

    def run(self):
        ids = {"PROLIFIC_PID": self.pid, "STUDY_ID": "LOAD", "SESSION_ID": secrets.token_hex(6)}
        self.request("landing", "GET", f"{self.url('landing')}?{urlencode(ids)}")
        _, _, page = self.request("consent", "GET", self.url("consent"))
        self.request("consent", "POST", self.url("consent"), {**fields(page), "decision": "agree"})
        _, _, page = self.request("instructions", "GET", self.url("instructions"))
        self.request("instructions", "POST", self.url("instructions"), fields(page))
        expected = 1
        status, location, page = self.request("trial", "GET", self.url("trial"))
        while location != self.url("done"):
            if status != 200:
                # Not known whether the last answer was stored (a dropped post): the page says.
                status, location, page = self.request("trial", "GET", self.url("trial"))
                continue
            form = fields(page)
            if int(form.get(POSITION_FIELD, 0)) != expected or not SKETCH.search(page.decode()):
                with self.tally.lock:
                    self.tally.wrong_item += 1
                expected = int(form.get(POSITION_FIELD, expected))
            thought = self.think * self.rng.uniform(0.5, 1.5)
            time.sleep(thought)
            answer = {**form, "grade": self.rng.choice(["real", "possibly_real", "fake"]),
                      "response_ms": int(thought * 1000)}
            # The answer's response is the next sketch's page (or a redirect to the finish page).
            status, location, page = self.request("grade", "POST", self.url("trial"), answer)
            if status == 302 or (status == 200 and int(fields(page).get(POSITION_FIELD, 0)) == expected + 1):
                self.tally.acknowledged[self.pid].append(expected)
                expected += 1
        status, _, _ = self.request("done", "GET", self.url("done"))
        if status == 200:
            with self.tally.lock:
                self.tally.finished += 1


def fields(page):
    return dict(FIELD.findall(page.decode()))


def percentile(values, share):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")


# --- the run ------------------------------------------------------------------------------------

def run_participants(root, slug, args, tally, on_tick=None):
    rng = random.Random(args.seed)
    participants = [Participant(root, slug, args.think, tally, random.Random(rng.random()))
                    for _ in range(args.participants)]
    ramp = [rng.uniform(0, args.ramp) for _ in participants]

    def one(k):
        time.sleep(ramp[k] if k < args.concurrency else 0)
        participants[k].run()

    with concurrent.futures.ThreadPoolExecutor(args.concurrency) as pool:
        futures = [pool.submit(one, k) for k in range(len(participants))]
        while not all(f.done() for f in futures):
            time.sleep(0.5)
            if on_tick:
                on_tick()
        for future in futures:
            future.result()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--participants", type=int, default=100, help="how many take part (default 100)")
    parser.add_argument("--concurrency", type=int, help="how many at once (default: all)")
    parser.add_argument("--items", type=int, default=40, help="sketches per participant (default 40)")
    parser.add_argument("--checks", type=int, default=3, help="attention checks per participant (default 3)")
    parser.add_argument("--think", type=float, default=3.0, help="mean seconds per answer (default 3)")
    parser.add_argument("--ramp", type=float, default=10.0, help="seconds over which they arrive (default 10)")
    parser.add_argument("--workers", type=int, help="gunicorn workers (default: gunicorn.conf.py's)")
    parser.add_argument("--reload-every", type=float, metavar="S",
                        help="reload gunicorn gracefully (SIGHUP) every S seconds during the run")
    parser.add_argument("--url", help="a running server's root URL instead of starting one")
    parser.add_argument("--study", help="with --url: the slug of a study that server serves")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    args.concurrency = args.concurrency or args.participants
    tally = Tally()

    if args.url:
        if not args.study:
            parser.error("--url needs --study")
        if os.environ.get("DATABASE_URL"):
            setup_django(os.environ["DATABASE_URL"])
        started = time.monotonic()
        run_participants(args.url, args.study, args, tally)
        report(args, tally, time.monotonic() - started, None, args.study)
        return

    folder = Path(tempfile.mkdtemp(prefix="study-load-"))
    postgres = server = None
    try:
        postgres = Postgres(folder / "postgres")
        (folder / "static").mkdir()
        env = {**os.environ, "DATABASE_URL": postgres.url, "STATIC_ROOT": str(folder / "static"),
               "SECRET_KEY": secrets.token_urlsafe(50), "ALLOWED_HOSTS": "127.0.0.1", "LOG_LEVEL": "WARNING"}
        env.pop("DEBUG", None)
        if args.workers:
            env["WEB_CONCURRENCY"] = str(args.workers)
        subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
        setup_django(postgres.url)
        slug = "load"
        make_study(slug, args.items, args.checks)
        from django.db import connections

        connections.close_all()  # the benchmark's own connection must not count as the server's
        server = Gunicorn(env, f"/s/{slug}/")
        reloads = []

        def maybe_reload():
            if args.reload_every and time.monotonic() - started >= args.reload_every * (len(reloads) + 1):
                server.reload()
                reloads.append(time.monotonic())

        bare = bare_request_cpu(server, postgres)
        web_before, database_before = cpu_seconds(server.process.pid), cpu_seconds(postgres.pid)
        client_before = resource.getrusage(resource.RUSAGE_SELF)
        started = time.monotonic()
        run_participants(server.url, slug, args, tally, maybe_reload)
        seconds = time.monotonic() - started
        cpu = {"gunicorn": cpu_seconds(server.process.pid) - web_before,
               "PostgreSQL": cpu_seconds(postgres.pid) - database_before}
        client = resource.getrusage(resource.RUSAGE_SELF)
        cpu["load client"] = client.ru_utime + client.ru_stime - client_before.ru_utime - client_before.ru_stime
        if reloads:
            print(f"gunicorn reloaded gracefully {len(reloads)} times during the run")
        report(args, tally, seconds, cpu, bare, slug)
    finally:
        if server:
            server.stop()
        if postgres:
            postgres.stop()
        shutil.rmtree(folder, ignore_errors=True)


def bare_request_cpu(server, postgres, n=300):
    """Server CPU seconds of one request that touches no database (the favicon), one at a time: the
    floor of any request on this machine now, which a busy machine raises (a core shared with
    other work runs slower), so a run's figures can be read against it."""
    before = cpu_seconds(server.process.pid) + cpu_seconds(postgres.pid)
    for _ in range(n):
        request_once("127.0.0.1", server.port, "GET", "/favicon.ico", {}, None)
    return (cpu_seconds(server.process.pid) + cpu_seconds(postgres.pid) - before) / n


def report(args, tally, seconds, cpu, bare, slug):
    acknowledged = sum(len(p) for p in tally.acknowledged.values())
    print(f"{args.participants} participants ({args.concurrency} at once), {args.items} sketches + "
          f"{args.checks} checks each, {args.think:g} s per answer, {seconds:.0f} s")
    print(f"finished: {tally.finished} of {args.participants}")
    if os.environ.get("DJANGO_SETTINGS_MODULE"):
        count, duplicates, lost = stored(slug, tally.acknowledged)
        print(f"grades acknowledged {acknowledged}, stored {count}, duplicates {duplicates}, "
              f"acknowledged but not stored {lost}")
    else:
        count = acknowledged
        print(f"grades acknowledged {acknowledged} (stored: not checked, no DATABASE_URL)")
    errors = sum(tally.server_errors.values())
    print(f"5xx: {errors} ({tally.unavailable} of them 503), connection errors: {tally.connection_errors}, "
          f"other errors: {dict(tally.other_errors) or 0}, pages showing the wrong sketch: {tally.wrong_item}")
    for kind in ("trial", "grade", "landing", "consent", "instructions", "done"):
        values = tally.latency.get(kind)
        if values:
            print(f"  {kind:<12} n={len(values):<6} p50 {percentile(values, .5) * 1000:6.1f} ms  "
                  f"p95 {percentile(values, .95) * 1000:6.1f} ms  p99 {percentile(values, .99) * 1000:6.1f} ms")
    print(f"ratings/s: {count / seconds:.1f}")
    if cpu:
        server = cpu["gunicorn"] + cpu["PostgreSQL"]
        per_rating = server / max(count, 1) * 1000
        print(f"server CPU: {per_rating:.2f} ms per rating (goal 7): gunicorn {cpu['gunicorn']:.1f} s + PostgreSQL "
              f"{cpu['PostgreSQL']:.1f} s for {count} ratings; the load client itself used {cpu['load client']:.1f} s")
        print(f"a bare request (no database) cost {bare * 1000:.2f} ms of server CPU just before the run: a rating "
              f"cost {per_rating / (bare * 1000):.1f} bare requests")
        p95 = percentile(tally.latency["grade"], .95) * 1000
        print(f"grade post p95 {p95:.0f} ms (goal 150)")


if __name__ == "__main__":
    main()

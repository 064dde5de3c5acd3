# The two commands of the quick start:
#   make demo   installs what is needed, makes the demo study and serves it
#               (on another port: make demo PORT=8001; for other machines: make demo ADDR=0.0.0.0:8000 ALLOWED_HOSTS=<host name>)
#   make test   runs the test suite
VENV := .venv
PYTHON := $(VENV)/bin/python
PORT ?= 8000
ADDR ?= 127.0.0.1:$(PORT)

.PHONY: demo test

$(VENV)/installed: requirements.txt
	python3 -m venv $(VENV)
	$(PYTHON) -m pip install -q --upgrade pip
	$(PYTHON) -m pip install -q -r requirements.txt
	touch $@

demo: $(VENV)/installed
	$(PYTHON) manage.py demo --addr $(ADDR)

test: $(VENV)/installed
	$(VENV)/bin/pytest -q

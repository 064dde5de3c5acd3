# The two commands of the quick start:
#   make demo   installs what is needed, makes the demo study and serves it
#   make test   runs the test suite
VENV := .venv
PYTHON := $(VENV)/bin/python

.PHONY: demo test

$(VENV)/installed: requirements.txt
	python3 -m venv $(VENV)
	$(PYTHON) -m pip install -q --upgrade pip
	$(PYTHON) -m pip install -q -r requirements.txt
	touch $@

demo: $(VENV)/installed
	$(PYTHON) manage.py demo

test: $(VENV)/installed
	$(VENV)/bin/pytest -q

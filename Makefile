# Two commands from a fresh clone: `make demo` runs the demo, `make test` runs the tests.
# Each creates the virtual environment and installs the project on first use, and installs
# again only when pyproject.toml changed since (the stamp file inside the environment).
#
#   make demo                        itr run configs/demo.toml
#   make test ARGS="-k leaderboard"  the offline tests, extra pytest arguments in ARGS
#   make test VENV=.venv-ci          another environment (.ci/run uses a fresh one)
#   make demo VENV=$HOME/envs/itr TORCH=torch   an existing environment, keeping its torch (e.g. CUDA)

VENV = .venv
PYTHON = python3
TORCH = torch==2.13.0
ARGS =
INSTALLED := $(VENV)/.installed

.PHONY: demo test browser

demo: $(INSTALLED)
	$(VENV)/bin/itr run configs/demo.toml $(ARGS)

test: $(INSTALLED) browser
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(VENV)/bin/python -m pytest $(ARGS)

$(INSTALLED): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip setuptools
	$(VENV)/bin/python -m pip install $(TORCH) -e '.[test,ray]'
	touch $@

# The HTML-report test renders the page in Debian's headless chromium.
browser:
	@if command -v chromium >/dev/null; then :; \
	elif command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
		(apt-get update -qq && apt-get install -y --no-install-recommends chromium) \
		|| echo "make: could not install chromium; the HTML-report test needs it"; \
	else echo "make: chromium is not on PATH; the HTML-report test needs it (apt-get install chromium)"; fi

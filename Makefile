# pykeep — every target installs what it needs, idempotently.
SHELL := /bin/bash
VENV  := .venv
PY    := $(VENV)/bin/python
APT_PACKAGES := iproute2 keepalived ipvsadm tcpdump iputils-ping curl kmod \
                qemu-system-x86 linux-image-amd64 busybox-static systemd \
                nftables frr prometheus
PYTEST_ARGS ?=

.PHONY: setup demo test test-fast lint typecheck bench clean

setup: .stamp-apt .stamp-venv

.stamp-apt:
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "apt: installing$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
	@touch $@

.stamp-venv: pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	@$(PY) -m pip install -q --upgrade pip >/dev/null 2>&1 || true
	@$(PY) -m pip install -q -e '.[test]'
	@touch $@

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: setup
	$(VENV)/bin/mypy

# The pure tests: no root, no namespaces, no VM. For quick loops.
test-fast: setup
	$(PY) -m pytest -m "not netns and not vm" -q $(PYTEST_ARGS)

# Everything. pytest exits 5 when it collected nothing: that is a failure too.
test: setup lint typecheck
	$(PY) -m pytest -q $(PYTEST_ARGS)

demo: setup
	$(PY) -m sim demo

bench: setup
	$(PY) -m bench

clean:
	rm -rf $(VENV) .stamp-* .mypy_cache .ruff_cache .pytest_cache

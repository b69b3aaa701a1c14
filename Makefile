# pykeep — every target installs what it needs, idempotently.
SHELL := /bin/bash
VENV  := .venv
PY    := $(VENV)/bin/python
APT_PACKAGES := iproute2 keepalived ipvsadm tcpdump iputils-ping curl kmod \
                qemu-system-x86 linux-image-amd64 busybox-static systemd \
                nftables frr prometheus redis-server e2fsprogs
PYTEST_ARGS ?=

.PHONY: setup demo demo-cluster test test-fast lint typecheck docs bench differential differential-vm clean chaos fuzz

setup: .stamp-apt .stamp-venv

.stamp-apt: Makefile
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
	@# compat: a plain path in a .pth; the default editable finder costs every
	@# Python start (pykeep -t included) about 25 ms of imports at site time.
	@$(PY) -m pip install -q -e '.[test]' --config-settings editable_mode=compat
	@touch $@

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports --no-cache

typecheck: setup
	$(VENV)/bin/mypy

# The documentation site; --strict: a broken link or API reference fails the build.
docs: setup
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict -q

# The pure tests: no root, no namespaces, no VM. For quick loops.
test-fast: setup
	$(PY) -m pytest -m "not netns and not vm" -q $(PYTEST_ARGS)

# Everything. pytest exits 5 when it collected nothing: that is a failure too.
# The VM tests run in a second pytest beside the namespace and pure tests: the
# guest keeps about one core busy, the namespace tests wait mostly on protocol
# timers, so together they take the time of the longer one.  For the same
# reason the namespace and pure tests run in two workers, a module per worker
# at a time (each rig has its own namespaces).  The demo's own boot follows
# them in their lane, which ends first.  The VM lane's output follows the others'.
DEMO_VM_TEST := tests/test_sim_demo.py::test_default_demo_with_pykeep_directors_in_the_vm
test: setup lint typecheck docs
	@$(PY) -m pytest -q -m vm --deselect $(DEMO_VM_TEST) --durations=15 $(PYTEST_ARGS) \
	  > .vm-tests.log 2>&1 & vm=$$!; \
	$(PY) -m pytest -q -m "not vm" -n 2 --dist loadfile --durations=25 $(PYTEST_ARGS); rest=$$?; \
	$(PY) -m pytest -q -m vm $(DEMO_VM_TEST); demo=$$?; \
	wait $$vm; vmrc=$$?; echo "--- VM tests ---"; cat .vm-tests.log; \
	echo "VM tests: exit $$vmrc; demo: exit $$demo; other tests: exit $$rest"; \
	test $$rest -eq 0 && test $$demo -eq 0 && test $$vmrc -eq 0

demo: setup
	$(PY) -m sim demo

# Seed 001's cluster mode (README "Cluster mode"): an FRR router, 3 directors, ECMP, in the VM.
demo-cluster: setup
	$(PY) -m sim cluster

bench: setup
	$(PY) -m bench

# The chaos table (README "Reliability"): every scenario, pykeep and keepalived side by side.
chaos: setup
	$(PY) -m sim chaos --peer keepalived --report chaos-report.md

# pykeep -t against keepalived -t on 20,000 generated files (root: one netns).
differential: setup
	$(PY) -m tests.differential --count 20000

# keepalived -C against pykeep -C in the VM on 200 generated virtual-server cases,
# 40 to a daemon start: with more, pykeep's first checks miss the window under emulation.
differential-vm: setup
	$(PY) -m tests.differential_vm --count 200 --batch 40

# The fuzzers at full size (make test runs them small): inputs, distinct rejections, crashes.
fuzz: setup
	$(PY) -m tests.fuzz

clean:
	rm -rf $(VENV) .stamp-* .mypy_cache .ruff_cache .pytest_cache

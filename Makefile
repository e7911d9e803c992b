# Two commands do all the set-up on a fresh machine:
#   make demo   create .venv, install spinefe with its extras, run the main job (results/)
#   make test   same bootstrap, then the whole test suite, serial and on 2 MPI ranks
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
# Meshes are cached in the project (a second `make demo` reads the mesh instead of remeshing).
export SPINEFE_CACHE ?= $(CURDIR)/.cache/meshes
# Tests get a per-run JIT cache (one FEniCS JIT cache must not be written by two independent
# runs at once) and a per-run mesh cache, which the mesh build, the serial and the 2-rank pass
# share. The run's directory is named once, here: a target-specific `:=` would be expanded once
# per target and give each pass a cache of its own (each pass then meshed every segment again).
RUN_CACHE := $(CURDIR)/.cache/run-$(shell date +%s%N)
test test-serial test-mpi test-meshes validate: export XDG_CACHE_HOME := $(RUN_CACHE)
test test-serial test-mpi test-meshes validate: export SPINEFE_TEST_CACHE = $(XDG_CACHE_HOME)/meshes
MPI_TIMEOUT ?= 1500
PYTEST := $(PY) -m pytest -q -p no:cacheprovider --durations=25

.PHONY: demo test test-serial test-mpi test-meshes validate venv lint benchmark study-convergence clean

$(VENV)/.installed: pyproject.toml
	@py=$$(scripts/find-python.sh) || exit 1; \
	  echo "using $$py"; \
	  [ -x $(PY) ] || "$$py" -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	@# -qq: setuptools' editable-install notice ("folders with the same name as your package")
	@# is a warning for every editable install, not a fault of this project.
	$(PY) -m pip install -qq -e ".[dolfinx,test]"
	touch $@

venv: $(VENV)/.installed

# The main job: the paper's baseline study (healthy / tumour / implanted under 500 N with both
# seed protocols of Table 1, and their dose) at the demo resolution, on 2 ranks (one case per
# rank), and its report.
DEMO_SIZE_MM ?= 2.0
demo: venv
	timeout -k 10 $(MPI_TIMEOUT) $(VENV)/bin/mpiexec -n 2 $(VENV)/bin/spinefe study run \
	  studies/paper_baseline.toml --set mesh.size_mm=$(DEMO_SIZE_MM) --out results/demo
	$(VENV)/bin/spinefe report results/demo
	@echo "main job done: results/demo/report.html (report.md, summary.csv, one directory per case)"

test: venv test-meshes test-serial test-mpi

# The suite's segment meshes (tests/conftest.py SEGMENTS), two gmsh builds side by side.
test-meshes: venv
	$(PY) tests/build_meshes.py $(SPINEFE_TEST_CACHE) default analytic & \
	  $(PY) tests/build_meshes.py $(SPINEFE_TEST_CACHE) seedless breach; \
	  s=$$?; wait $$! && exit $$s

# Two pytest-xdist workers, one per core. A test file stays on one worker (its module fixtures
# are built once) and each worker has a JIT cache of its own (tests/conftest.py).
test-serial: venv
	$(PYTEST) -n 2 --dist loadfile -m "not mpi_only and not validation" tests

# Every mpiexec runs under a timeout: a rank stuck in a collective fails in minutes, not hours.
# It starts from the JIT cache of the serial pass's first worker (one job: no race inside it).
test-mpi: venv
	XDG_CACHE_HOME=$(XDG_CACHE_HOME)/gw0 \
	  timeout -k 10 $(MPI_TIMEOUT) $(VENV)/bin/mpiexec -n 2 $(PYTEST) -m "(parallel or mpi_only) and not serial_only and not validation" tests

# The long checks, run by hand (README, "Validation"): the container image's system stage built
# with buildah, the smoke script, the mesh convergence at h = 2.0 mm, the optimiser's conforming
# verification, the range of motion on 1 against 2 ranks, the six motions at h = 2.0 mm
# (studies/rom_validation.toml) and the full Pareto search (benchmarks/pareto_search.py).
validate: venv test-meshes
	$(PYTEST) -m validation tests
	timeout -k 10 3600 $(VENV)/bin/mpiexec -n 2 $(VENV)/bin/spinefe study run \
	  studies/rom_validation.toml --out results/validate/rom_validation
	$(VENV)/bin/spinefe report results/validate/rom_validation
	@# pareto_search.py starts its own `mpiexec -n 2` (under a timeout): not run under one.
	$(PY) benchmarks/pareto_search.py --out results/validate/pareto_search

lint: venv
	$(VENV)/bin/ruff check spinefe dosimetry tests benchmarks studies

# Every benchmark script at full size, one after the other (each prints its table; the figures
# in docs/ are theirs). Several hours on 2 cores; the test suite runs each at toy size
# (tests/test_benchmarks.py, which also checks that this list names every script).
BENCH_OUT ?= results/benchmarks
benchmark: venv
	$(PY) benchmarks/dose_points.py
	$(PY) benchmarks/mesh_sizes.py
	$(PY) benchmarks/mesh_quality.py
	$(PY) benchmarks/mechanics_solve.py
	$(PY) benchmarks/nonlinear_solve.py
	$(PY) benchmarks/plan_evaluation.py
	$(PY) benchmarks/embedded_seeds.py --out $(BENCH_OUT)/embedded_seeds.jsonl
	$(PY) benchmarks/pareto_search.py --out $(BENCH_OUT)/pareto_search
	timeout -k 10 7200 $(VENV)/bin/mpiexec -n 2 $(PY) benchmarks/support_uniformity.py \
	  --search $(BENCH_OUT)/pareto_search

# Mesh convergence of the mechanics indicators at h = 1.0, 0.8, 0.6 mm (about 45 min on 2 cores).
study-convergence: venv
	timeout -k 10 7200 $(VENV)/bin/mpiexec -n 2 $(VENV)/bin/spinefe study run \
	  studies/mesh_convergence.toml --ranks-per-case 2
	$(VENV)/bin/spinefe report results/mesh_convergence

clean:
	rm -rf .cache results

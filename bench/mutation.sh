#!/usr/bin/env bash
# Mutation score of the core (issue 21): mutmut mutates gpunet's core modules one change at a
# time and runs the fast suite (-m "not slow") on the CuPy path (the strict stand-in, whose
# refusals kill mutants that the NumPy path would let through) against each mutant.
#
#   bash bench/mutation.sh                 # the whole core; about half an hour on 2 cores
#   bash bench/mutation.sh gpunet/losses.py gpunet/metrics.py
#   MUTANTS="gpunet.config.x_set_value*" bash bench/mutation.sh gpunet/config.py  # re-check some
#   TESTS="tests/test_config.py" bash bench/mutation.sh gpunet/config.py  # a subset: a lower bound
#
# Works in a copy of the tree (mutmut writes a mutants/ folder); prints mutmut's results and the
# score. Needs the project's .venv (scripts/setup.sh); installs mutmut into it when missing.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
python="$root/.venv/bin/python"
"$python" -m pip show mutmut >/dev/null 2>&1 || "$python" -m pip install -q "mutmut>=3.3"
core=(gpunet/kernels/*.py gpunet/losses.py gpunet/optimizers/*.py gpunet/metrics.py
      gpunet/metric_base.py gpunet/metrics_confusion.py gpunet/layers.py gpunet/layer_base.py
      gpunet/inputs.py gpunet/step/*.py gpunet/cuda/*.py gpunet/trainer.py
      gpunet/tracker.py gpunet/checkpoint.py gpunet/config.py gpunet/callbacks/*.py
      gpunet/progress.py)
targets=("${@:-${core[@]}}")
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
git -C "$root" ls-files -z | (cd "$root" && xargs -0 cp --parents -t "$work")
only=$(printf '"%s", ' "${targets[@]}")
cat >> "$work/pyproject.toml" <<TOML

[tool.mutmut]
source_paths = ["gpunet"]
only_mutate = [${only%, }]
also_copy = ["configs", "Dockerfile", ".hadolint.yaml", "README.md", "scripts", "bench"]
pytest_add_cli_args = ["-m", "not slow and not mpi", "-q", "-x", "-p", "no:cacheprovider",
                       "--ignore=tests/test_style.py", "--ignore=tests/test_packaging.py"]
pytest_add_cli_args_test_selection = [$(printf '"%s", ' ${TESTS:-tests} | sed 's/, $//')]
TOML
cd "$work"
export GPUNET_TEST_BACKEND=standin
# mutmut records each result as it goes: a crash at its exit (seen once) loses none of them.
# shellcheck disable=SC2086  # MUTANTS: space-separated name patterns, split on purpose
"$root/.venv/bin/mutmut" run ${MUTANTS:-} > mutmut-run.log 2>&1 \
  || echo "mutation: mutmut exited with $? (its results so far follow)" >&2
"$root/.venv/bin/mutmut" results --all true > results.txt 2>/dev/null || true
kept="${MUTATION_RESULTS:-/tmp/mutation-results.txt}"  # kept: the results, and each survivor's diff
cp results.txt "$kept"
for name in $(grep ': survived$' results.txt | sed 's/: survived$//'); do
  timeout 60 "$root/.venv/bin/mutmut" show "$name" 2>/dev/null || echo "# $name: no diff (mutmut show exited with $?)"
done > "$kept.diff"
killed=$(grep -c ': killed$' results.txt || true)
survived=$(grep -c ': survived$' results.txt || true)
other=$(grep -vc -e ': killed$' -e ': survived$' results.txt || true)
grep ': survived$' results.txt || true
if [ $((killed + survived)) -eq 0 ]; then
  echo "mutation: no mutant was checked (other $other); the end of mutmut's log:" >&2
  tail -20 mutmut-run.log >&2
  exit 1
fi
echo "mutation: killed $killed, survived $survived, other $other;" \
  "score $(( 100 * killed / (killed + survived) ))% of the checked mutants"

"""Installing eatnas_tf the way Python users do (issue 18): the lock and pyproject.toml agree
for every supported Python, one TensorFlow distribution, console scripts that are their
`python -m` modules, packaged flagfiles; and (slow, `make test-install`) the wheel built by
`python -m build`, installed into a fresh venv outside the checkout, `pip check` clean,
running `eatnas-cost` and a smoke search from there."""

import glob
import json
import os
import re
import shutil
import subprocess
import sys

import pytest

try:
    import tomllib
except ImportError:  # Python 3.10: tomli is in requirements.lock there
    import tomli as tomllib

from lockfiles import lock_pins as _lock  # tests/lockfiles.py
from lockfiles import marker_env as _env
from lockfiles import norm as _norm
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SUPPORTED = ("3.10", "3.11", "3.12", "3.13")
MOBILENET_V2 = ("sep_k3_w1.0_d1,mb6_k3_w1.0_d2_skip,mb6_k3_w1.0_d3_skip,mb6_k3_w1.0_d4_skip,"
                "mb6_k3_w1.0_d3_skip,mb6_k3_w1.0_d3_skip,mb6_k3_w1.0_d1_skip")
TF_DISTRIBUTIONS = {"tensorflow", "tensorflow-cpu", "tensorflow-gpu", "tensorflow-intel",
                    "tf-nightly", "tf-nightly-cpu"}


def _pyproject():
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        return tomllib.load(f)


@pytest.mark.parametrize("python", SUPPORTED)
def test_lock_one_tensorflow_and_pyproject_pins_agree(python):
    project = _pyproject()["project"]
    assert SpecifierSet(project["requires-python"]).contains(python + ".0")
    pins = _lock("requirements.lock", python)
    assert {n for n in pins if n in TF_DISTRIBUTIONS} == {"tensorflow"}
    extras = project["optional-dependencies"]
    for group, lock in (("", "requirements.lock"), ("export", "requirements.lock"),
                        ("test", "requirements.lock"), ("ray", "requirements-ray.lock")):
        locked = _lock(lock, python)
        for line in extras[group] if group else project["dependencies"]:
            req = Requirement(line)
            if req.marker and not req.marker.evaluate(_env(python)):
                continue
            assert _norm(req.name) in locked, f"{req.name} ({group or 'base'}) not in {lock}"
            assert req.specifier.contains(locked[_norm(req.name)]), \
                f"{lock} pins {req.name}=={locked[_norm(req.name)]}, pyproject says {line}"
    # the gpu extra adds CUDA libraries to the same TensorFlow, not a second distribution
    gpu = [Requirement(r) for r in extras["gpu"]]
    assert {_norm(r.name) for r in gpu} == {"tensorflow"}
    assert all(r.specifier.contains(pins["tensorflow"]) for r in gpu)
    for lock in ("requirements-gpu.lock", "requirements-ray.lock"):
        assert {n for n in _lock(lock, python) if n in TF_DISTRIBUTIONS} == {"tensorflow"}
    assert any(n.startswith("nvidia-cudnn") for n in _lock("requirements-gpu.lock", python))


def test_requires_python_bounds():
    spec = SpecifierSet(_pyproject()["project"]["requires-python"])
    assert not spec.contains("3.9.18") and not spec.contains("3.14.0")
    assert Marker('python_version < "3.11"').evaluate(_env("3.10"))


def test_console_scripts_are_the_modules():
    from eatnas_tf import console

    scripts = _pyproject()["project"]["scripts"]
    assert set(scripts) == set(console.SCRIPTS)
    import importlib.util
    for script, target in scripts.items():
        mod, func = target.split(":")
        assert mod == "eatnas_tf.console"
        fn = getattr(console, func)
        assert fn.__doc__ == f"`{script}`: `python -m {console.SCRIPTS[script]}`."
        if console.SCRIPTS[script] not in ("eatnas_tf.run", "eatnas_tf.latency_table"):
            assert importlib.util.find_spec(console.SCRIPTS[script]), script


def _absl_expand(argv, cwd):
    """What absl's own --flagfile expansion gives for argv, run in cwd."""
    code = ("import json, sys; from absl import flags; "
            "print(json.dumps(flags.FlagValues().read_flags_from_files(sys.argv[1:])))")
    p = subprocess.run([sys.executable, "-c", code, *argv], cwd=cwd, capture_output=True,
                       text=True, check=True)
    return json.loads(p.stdout)


def test_packaged_flagfiles_expand_as_absl_does_in_the_checkout(tmp_path, monkeypatch):
    from eatnas_tf import console

    names = sorted(os.path.basename(p) for p in glob.glob(os.path.join(ROOT, "flags", "*.cfg")))
    assert "smoke.cfg" in names and "train_cifar10_search.inc.cfg" in names
    assert sorted(os.listdir(console.FLAGFILE_DIR)) == sorted(os.listdir(
        os.path.join(ROOT, "flags")))
    argv = [f"--flagfile=flags/{n}" for n in names] + ["--seed=3"]
    expected = _absl_expand(argv, ROOT)
    monkeypatch.chdir(tmp_path)  # no flags/ here: the packaged copies are read
    got = console.resolve_flagfiles(["prog"] + argv)
    assert got[1:] == expected
    assert any(a == "--dataset=cifar10" for a in got)  # a nested include was expanded
    # the `--flagfile NAME` form and a bare name resolve too; unknown files are left to absl
    assert console.resolve_flagfiles(["p", "--flagfile", "smoke.cfg"])[1:] == \
        _absl_expand(["--flagfile=flags/smoke.cfg"], ROOT)
    assert console.resolve_flagfiles(["p", "--flagfile=flags/nope.cfg", "--", "--flagfile=x"]) \
        == ["p", "--flagfile=flags/nope.cfg", "--", "--flagfile=x"]
    # a flagfile that exists where it is named is absl's, untouched
    (tmp_path / "flags").mkdir()
    (tmp_path / "flags" / "smoke.cfg").write_text("--seed=7\n")
    assert console.resolve_flagfiles(["p", "--flagfile=flags/smoke.cfg"]) == \
        ["p", "--flagfile=flags/smoke.cfg"]


def _clean_env(**extra):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="", **extra)
    return env


@pytest.mark.parametrize("args,rc", [
    ([f"--arch={MOBILENET_V2}", "--space=imagenet"], 0),
    (["--arch=mb6_k4_w1.0_d1", "--space=imagenet"], 2),  # bad input: one line, exit 2
])
def test_console_entry_point_same_as_python_m(tmp_path, args, rc):
    env = _clean_env(PYTHONPATH=ROOT)
    via_m = subprocess.run([sys.executable, "-m", "eatnas_tf.cost", *args], cwd=tmp_path,
                           env=env, capture_output=True, text=True, timeout=300)
    code = "import sys; from eatnas_tf import console; sys.argv[0] = 'eatnas-cost'; console.cost()"
    via_script = subprocess.run([sys.executable, "-c", code, *args], cwd=tmp_path, env=env,
                                capture_output=True, text=True, timeout=300)
    assert (via_script.returncode, via_script.stdout, via_script.stderr) == \
        (via_m.returncode, via_m.stdout, via_m.stderr)
    assert via_m.returncode == rc and len(via_m.stderr.splitlines()) == (rc != 0)


def _run(cmd, cwd, timeout=1800, **kw):
    p = subprocess.run(cmd, cwd=cwd, env=_clean_env(), capture_output=True, text=True,
                       timeout=timeout, **kw)
    assert p.returncode == 0, f"{cmd} failed ({p.returncode}):\n{p.stdout[-2000:]}\n" \
                              f"{p.stderr[-3000:]}"
    return p


@pytest.mark.slow
def test_wheel_installs_and_runs_outside_the_checkout(tmp_path_factory):
    """`python -m build` -> sdist and wheel; the wheel into a fresh venv (deps constrained
    to requirements.lock) in a directory outside the checkout; pip check; console scripts."""
    work = tmp_path_factory.mktemp("install")
    assert not str(work).startswith(ROOT)
    dist = work / "dist"
    _run([sys.executable, "-m", "build", "--outdir", str(dist), ROOT], cwd=work)
    wheel, = glob.glob(str(dist / "eatnas_tf-*.whl"))
    sdist, = glob.glob(str(dist / "eatnas_tf-*.tar.gz"))
    listing = subprocess.run([sys.executable, "-m", "zipfile", "-l", wheel], capture_output=True,
                             text=True, check=True).stdout
    assert "eatnas_tf/flagfiles/smoke.cfg" in listing and "eatnas_tf/console.py" in listing
    assert sdist

    venv = work / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], cwd=work)
    bin_dir = venv / "bin"
    pip = [str(bin_dir / "python"), "-m", "pip"]
    _run(pip + ["install", "-q", "-c", os.path.join(ROOT, "requirements.lock"),
                f"{wheel}[export]"], cwd=work)
    check = _run(pip + ["check"], cwd=work)
    assert "No broken requirements found" in check.stdout
    installed = {_norm(d["name"]): d["version"] for d in json.loads(
        _run(pip + ["list", "--format=json"], cwd=work).stdout)}
    assert {n for n in installed if n in TF_DISTRIBUTIONS} == {"tensorflow"}
    where = _run([str(bin_dir / "python"), "-c", "import eatnas_tf; print(eatnas_tf.__file__)"],
                 cwd=work).stdout.strip()
    assert where.startswith(str(venv)), where
    for script in _pyproject()["project"]["scripts"]:
        assert (bin_dir / script).exists(), script

    cost = _run([str(bin_dir / "eatnas-cost"), f"--arch={MOBILENET_V2}", "--space=imagenet"],
                cwd=work, timeout=300)
    got = json.loads(cost.stdout)
    assert (got["params"], got["madds"]) == (3538984, 300774272)

    run_dir = work / "smoke"
    assert not (work / "flags").exists()  # the packaged flagfile is the one read
    _run([str(bin_dir / "eatnas-search"), f"--run_dir={run_dir}", "--flagfile=flags/smoke.cfg",
          "--max_candidates=4", "--population=2"], cwd=work, timeout=900)
    with open(run_dir / "candidates.jsonl") as f:
        recs = [json.loads(line) for line in f]
    assert len(recs) == 4 and all(r["status"] == "ok" for r in recs)
    assert os.path.exists(run_dir / "report.json")
    shutil.rmtree(venv, ignore_errors=True)  # ~2 GB


def test_make_demo_runs_the_readme_command():
    """Issue 17 item 1: `make` runs exactly the command the README shows."""
    if not shutil.which("make"):
        pytest.skip("make not installed")
    with open(os.path.join(ROOT, "README.md")) as f:
        shown, = re.findall(r"`make` runs `(python -m eatnas_tf\.demo [^`]*)`", f.read())
    # --no-print-directory: under `make test` this make is nested and would add
    # "make[1]: Entering/Leaving directory" lines
    p = subprocess.run(["make", "--no-print-directory", "-n", "demo", "PYTHON=python"], cwd=ROOT,
                       capture_output=True, text=True, check=True)
    assert shown in p.stdout.splitlines(), p.stdout
    p = subprocess.run(["make", "--no-print-directory", "-n"], cwd=ROOT, capture_output=True,
                       text=True, check=True)
    assert p.stdout.splitlines()[-1].endswith(shown.replace("python ", "", 1))

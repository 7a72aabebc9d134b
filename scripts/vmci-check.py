#!/usr/bin/env python3
"""What `make check-vmci` holds scripts/freebsd-vm-test.sh and the two CI
definitions that run it (.cirrus.yml, .github/workflows/freebsd.yml) to.

This machine cannot boot FreeBSD, so it checks everything short of that:

* the script parses (`sh -n`) and is clean under `shellcheck -s sh`; what
  follows runs it under dash and under `bash --posix`;
* on Linux it refuses with exit status 2 and one "needs FreeBSD" line; bad
  arguments are one line and status 2; --help is status 0;
* under a fake FreeBSD (uname, id, sysctl, pkg, make, cargo, cc, mdconfig,
  kldload, ... replaced by a recording stand-in on PATH) the prerequisite
  checks refuse what they must, a full run executes exactly the commands it
  prints, in the order the dry run prints them, and a failing step, a kernel
  complaint in dmesg or a ^C still detaches, kldunloads and destroys the md
  disk;
* the dry run's command sequence is the one kmod/README.md documents ("Testing
  in a FreeBSD VM"), and the native build commands README "Building on
  FreeBSD 15" gives are the ones the script runs, so neither drifts;
* each CI definition runs only `sh scripts/freebsd-vm-test.sh ...`, one
  command, on FreeBSD 15.
"""

import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / ".cache" / "vmci" / "pylib"))
import yaml  # noqa: E402  (after the cache path: scripts/vmci-setup.sh)

SCRIPT_REL = "scripts/freebsd-vm-test.sh"
SCRIPT = REPO / SCRIPT_REL
README = REPO / "kmod" / "README.md"
CIRRUS = REPO / ".cirrus.yml"
WORKFLOW = REPO / ".github" / "workflows" / "freebsd.yml"
# The one command each CI definition may run: the script, under sh.
CI_COMMAND = re.compile(r"^sh scripts/freebsd-vm-test\.sh( --[a-z-]+)*$")
# Each run of the script under test finishes in well under a second; a hang
# (a loop that never ends) must fail, not stall `make test`.
RUN_TIMEOUT_S = 30
# What the fake mdconfig hands out and the fake rzilctl attaches as: not
# md0/instance 0, so that a placeholder left in the real path shows.
FAKE_MD_UNIT = 3
FAKE_INSTANCE = 2

# The shells the script is run under: Debian's sh (dash, an ash like
# FreeBSD's /bin/sh) and bash in POSIX mode, so that a construct whose
# meaning differs between shells shows.
SHELLS = [["sh"], ["bash", "--posix"]]
SHELL = SHELLS[0]

failures = []


def check(ok, what):
    where = "" if SHELL == SHELLS[0] else f"[{' '.join(SHELL)}] "
    what = where + what
    print(f"vmci-check: {'ok  ' if ok else 'FAIL'} {what}")
    if not ok:
        failures.append(what)
    return ok


def run(args, env=None, cwd=None):
    return subprocess.run(
        args,
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=RUN_TIMEOUT_S,
        check=False,
    )


def commands(stdout):
    """The `$ command` lines the script prints, without the step prefix."""
    out = []
    for line in stdout.splitlines():
        m = re.match(r"^freebsd-vm-test: \[[a-z]+\] \$ (.*)$", line)
        if m:
            out.append(m.group(1))
    return out


def one_error_line(proc, needle):
    lines = proc.stderr.splitlines()
    return (
        len(lines) == 1
        and lines[0].startswith("freebsd-vm-test: error: ")
        and needle in lines[0]
    )


def ends_in_one_error(proc, needle):
    """A failed step: whatever the command said, then the script's one line."""
    lines = proc.stderr.splitlines()
    errors = [x for x in lines if x.startswith("freebsd-vm-test: error: ")]
    return len(errors) == 1 and lines[-1] == errors[0] and needle in errors[0]


# --- static checks ------------------------------------------------------------


def check_static():
    p = run(["sh", "-n", str(SCRIPT)])
    check(p.returncode == 0, f"sh -n {SCRIPT_REL} {p.stderr.strip()}")
    if shutil.which("shellcheck") is None:
        check(False, "shellcheck is installed (scripts/vmci-setup.sh installs it)")
        return
    p = run(["shellcheck", "-s", "sh", str(SCRIPT)])
    check(p.returncode == 0, f"shellcheck -s sh {SCRIPT_REL}\n{p.stdout}")
    check(SCRIPT.stat().st_mode & stat.S_IXUSR != 0, f"{SCRIPT_REL} is executable")
    first = SCRIPT.read_text().splitlines()[0]
    check(first == "#!/bin/sh", f"{SCRIPT_REL} runs under FreeBSD's /bin/sh ({first})")


# --- on Linux: refusals, arguments, --help -------------------------------------


def check_arguments():
    p = run([*SHELL, str(SCRIPT)])
    check(
        p.returncode == 2 and p.stdout == "" and one_error_line(p, "needs FreeBSD 15"),
        f"on Linux: exit 2 and one 'needs FreeBSD' line (got {p.returncode}: {p.stderr!r})",
    )
    p = run([*SHELL, str(SCRIPT), "--help"])
    check(
        p.returncode == 0 and p.stdout.startswith("usage: ") and "--yes-destroy-data" in p.stdout,
        "--help: usage on stdout, exit 0",
    )
    bad = [
        (["--bogus"], "unknown argument '--bogus'"),
        (["--seconds"], "--seconds needs a value"),
        (["--seconds", "0"], "not a whole number in 1..3600"),
        (["--seconds", "3601"], "not a whole number in 1..3600"),
        (["--seconds", "99999999999999999999"], "not a whole number"),
        (["--seconds", "1.5"], "not a whole number"),
        (["--seconds", "-3"], "not a whole number"),
        (["--provider"], "--provider needs a GEOM provider name"),
        (["--provider", "ada1"], "add --yes-destroy-data"),
        (["--provider", "ada1;rm", "--yes-destroy-data"], "is not a GEOM provider name"),
        (["--provider", "x" * 64, "--yes-destroy-data"], "longer than 63 bytes"),
        (["--yes-destroy-data"], "goes with --provider"),
    ]
    for args, needle in bad:
        p = run([*SHELL, str(SCRIPT), *args])
        check(
            p.returncode == 2 and p.stdout == "" and one_error_line(p, needle),
            f"{' '.join(args)[:40]}: exit 2, one line with '{needle}' (got {p.returncode}: {p.stderr!r})",
        )


# --- a fake FreeBSD -------------------------------------------------------------

# One stand-in for every FreeBSD command the script runs: it records its
# name and arguments in $FAKE_LOG and answers the way FreeBSD's would;
# FAKE_FAIL="name" or "name:first-argument" makes it fail instead.
FAKE = r"""#!/bin/sh
name=${0##*/}
printf '%s\n' "$name${*:+ $*}" >>"$FAKE_LOG"
case " ${FAKE_FAIL:-} " in *" $name "* | *" $name:${1:-} "*) echo "$name: fake failure" >&2; exit 1 ;; esac
case $name in
uname)
	case $1 in -s) echo FreeBSD ;; -r) echo "$FAKE_RELEASE" ;; -m) echo "$FAKE_MACHINE" ;; esac ;;
id) echo "$FAKE_UID" ;;
sysctl)
	case $* in
	"-n kern.conftxt") printf '%b' "${FAKE_CONFTXT-options\tINVARIANTS\noptions\tWITNESS\n}" ;;
	"-n "*) exit 1 ;;
	"kern.rzil") echo "kern.rzil.commit_timeout_pct: 10" ;;
	esac ;;
mount) echo "/dev/ada0p2 / ufs rw 1 1" ;;
mdconfig) [ "$1" = -a ] && echo "md$FAKE_MD_UNIT" ;;
kldstat) exit 1 ;;
make)
	case $* in
	*-V*) echo "$PWD/kmod" ;;
	*) : >kmod/rzil.ko ;;
	esac ;;
cargo) mkdir -p target/release && cp "$0" target/release/rzil ;;
cc)
	while [ $# -gt 0 ]; do
		[ "$1" = -o ] && { cp "$0" "$2"; break; }
		shift
	done ;;
rzilctl)
	[ "$1" = attach ] && echo "instance $FAKE_INSTANCE: $2, 268435456 bytes, 512-byte sectors" ;;
dmesg)
	echo "rzil: loaded"
	[ -n "${FAKE_DMESG:-}" ] && echo "$FAKE_DMESG" ;;
sleep) ;;
esac
exit 0
"""
FAKE_NAMES = [
    "uname", "id", "sysctl", "mount", "pkg", "rustup-init", "rustup", "make", "cargo",
    "cc", "mdconfig", "kldstat", "kldload", "kldunload", "dmesg", "fetch", "tar", "sleep",
]


class FakeFreeBSD:
    """A copy of the script in a scratch checkout, with the fake on PATH."""

    def __init__(self, root):
        self.root = Path(root)
        (self.root / "scripts").mkdir()
        (self.root / "kmod").mkdir()
        shutil.copy(SCRIPT, self.root / "scripts" / SCRIPT.name)
        self.bin = self.root / "fakebin"
        self.bin.mkdir()
        for name in FAKE_NAMES:
            path = self.bin / name
            path.write_text(FAKE)
            path.chmod(0o755)
        self.sysdir = self.root / "sys"
        (self.sysdir / "conf").mkdir(parents=True)
        (self.sysdir / "conf" / "kmod.mk").write_text("")
        self.log = self.root / "fake.log"

    def run(self, *args, **env_over):
        self.log.write_text("")
        env = {
            "PATH": f"{self.bin}:/usr/bin:/bin",
            "HOME": str(self.root),
            "FAKE_LOG": str(self.log),
            "FAKE_RELEASE": "15.0-RELEASE-p1",
            "FAKE_MACHINE": "amd64",
            "FAKE_UID": "0",
            "FAKE_MD_UNIT": str(FAKE_MD_UNIT),
            "FAKE_INSTANCE": str(FAKE_INSTANCE),
            "SYSDIR": str(self.sysdir),
        }
        env.update(env_over)
        # The fake `cc` copies itself to target/rzilctl: it needs target/.
        (self.root / "target").mkdir(exist_ok=True)
        proc = run([*SHELL, str(self.root / "scripts" / SCRIPT.name), *args], env=env, cwd="/")
        calls = self.log.read_text().splitlines()
        return proc, calls


def subsequence(needles, haystack):
    it = iter(haystack)
    return all(any(n == h for h in it) for n in needles)


def logged(cmd):
    """A printed command as the fake records it: the program's base name."""
    prog, _, rest = cmd.partition(" ")
    return prog.rsplit("/", 1)[-1] + (" " + rest if rest else "")


def check_fake_freebsd(dry):
    with tempfile.TemporaryDirectory(prefix="vmci-") as tmp:
        fake = FakeFreeBSD(tmp)

        for env, needle in [
            ({"FAKE_RELEASE": "14.3-RELEASE"}, "needs FreeBSD 15 or later (this is 14.3-RELEASE)"),
            ({"FAKE_MACHINE": "arm64"}, "needs amd64"),
            ({"FAKE_UID": "1001"}, "needs root"),
            ({"SYSDIR": str(fake.root / "nosrc")}, "no kernel sources in SYSDIR="),
        ]:
            p, calls = fake.run(**env)
            check(
                p.returncode == 2 and one_error_line(p, needle)
                and not any(c.startswith(("pkg", "kldload", "mdconfig")) for c in calls),
                f"fake FreeBSD {env}: exit 2, '{needle}', nothing installed or loaded",
            )
        p, calls = fake.run("--provider", "ada0p2", "--yes-destroy-data")
        check(p.returncode == 2 and one_error_line(p, "no /dev/ada0p2"),
              "--provider of a missing device: exit 2 before anything runs")

        # A full run: what it prints is what it runs, in the dry run's order.
        p, calls = fake.run()
        printed = commands(p.stdout)
        want = [
            c.replace("md0", f"md{FAKE_MD_UNIT}")
            .replace("-u 0", f"-u {FAKE_MD_UNIT}")
            .replace("SYSDIR=/usr/src/sys", f"SYSDIR={fake.sysdir}")
            .replace(" 0", f" {FAKE_INSTANCE}") if c.startswith("target/rzilctl") else
            c.replace("md0", f"md{FAKE_MD_UNIT}")
            .replace("-u 0", f"-u {FAKE_MD_UNIT}")
            .replace("SYSDIR=/usr/src/sys", f"SYSDIR={fake.sysdir}")
            for c in dry
        ]
        # rustup-init runs only where rustup is missing: the fake has rustup.
        want = [c for c in want if not c.startswith("rustup-init")]
        check(p.returncode == 0 and "passed: rzil.ko built" in p.stdout,
              f"fake FreeBSD full run passes (exit {p.returncode}: {p.stderr.strip()[-300:]})")
        check(printed == want, "fake full run prints the dry run's commands (md and instance filled in)"
              + ("" if printed == want else f"\n  printed {printed}\n  wanted  {want}"))
        check(subsequence([logged(c) for c in printed], calls),
              "fake full run executes every printed command, in order"
              + ("" if subsequence([logged(c) for c in printed], calls) else f"\n  calls {calls}"))
        check("kldstat -q -m rzil" in calls, "refuses a second load: asks kldstat -q -m rzil first")
        check("kernel has INVARIANTS" in p.stdout and "kernel has WITNESS" in p.stdout,
              "reports a kernel with INVARIANTS and WITNESS (kern.conftxt)")
        # The released GENERIC: neither option. A warning each, not a failure.
        p, calls = fake.run("--skip-build", FAKE_CONFTXT="options\\tSMP\\n")
        check(p.returncode == 0 and "warning: kernel without INVARIANTS" in p.stderr
              and "warning: kernel without WITNESS" in p.stderr,
              f"a kernel without INVARIANTS/WITNESS: two warnings, the run goes on (exit {p.returncode})")

        # Failures: one error line, exit 1, and everything undone.
        for fail, env, needle, undo in [
            ("rzil run", {"FAKE_FAIL": "rzil"}, "[run] failed", ["kldunload rzil", f"mdconfig -d -u {FAKE_MD_UNIT}"]),
            ("rzilctl stress", {"FAKE_FAIL": "rzilctl:stress"}, "[stress] failed", ["kldunload rzil", f"mdconfig -d -u {FAKE_MD_UNIT}"]),
            ("kldload", {"FAKE_FAIL": "kldload"}, "[load] failed", [f"mdconfig -d -u {FAKE_MD_UNIT}"]),
            ("a lock order reversal in dmesg", {"FAKE_DMESG": "lock order reversal:"}, "[dmesg] the kernel complained",
             ["kldunload rzil", f"mdconfig -d -u {FAKE_MD_UNIT}"]),
            ("a panic-less KASSERT in dmesg", {"FAKE_DMESG": "rzil: failed assertion"}, "[dmesg]",
             ["kldunload rzil", f"mdconfig -d -u {FAKE_MD_UNIT}"]),
            ("make -C kmod", {"FAKE_FAIL": "make"}, "[build] failed", []),
        ]:
            p, calls = fake.run(**env)
            ok = p.returncode == 1 and ends_in_one_error(p, needle)
            tail = calls[-len(undo):] if undo else []
            check(ok and tail == undo,
                  f"fails on {fail}: exit 1, one error line last, then {undo or 'nothing to undo'}"
                  + ("" if ok and tail == undo else f" (got {p.returncode}: {p.stderr!r}, calls end {calls[-3:]})"))
        p, calls = fake.run(FAKE_FAIL="rzilctl:stress")
        check("rzilctl detach 2" in calls, "a failed stress detaches the instance rzilctl attached")

        # A given provider: no md disk made or destroyed.
        dev = Path("/dev/null")
        p, calls = fake.run("--provider", str(dev), "--yes-destroy-data", "--skip-build")
        check(p.returncode == 0 and not any(c.startswith(("mdconfig", "pkg", "cargo")) for c in calls)
              and "rzil run --kernel --provider null --threads 16 --seconds 5" in calls,
              f"--provider /dev/null --skip-build: no md disk, no build (exit {p.returncode}: {p.stderr.strip()})")
        p, calls = fake.run("--skip-build", "--seconds", "7")
        check(p.returncode == 0 and f"rzil run --kernel --provider md{FAKE_MD_UNIT} --threads 16 --seconds 7" in calls,
              "--seconds 7 reaches rzil run --kernel")

        # --fetch-src: the running release's src.txz, sys/ only, when SYSDIR
        # (the default /usr/src/sys) is missing; a snapshot's from snapshots/.
        if not Path("/usr/src/sys/conf/kmod.mk").exists():
            for release, url in [
                ("15.0-RELEASE-p1", "https://download.freebsd.org/releases/amd64/15.0-RELEASE/src.txz"),
                ("16.0-CURRENT", "https://download.freebsd.org/snapshots/amd64/16.0-CURRENT/src.txz"),
            ]:
                p, calls = fake.run("--fetch-src", "--skip-build", SYSDIR="/usr/src/sys", FAKE_RELEASE=release)
                fetched = [c for c in calls if c.startswith(("fetch", "tar"))]
                check(len(fetched) == 2 and fetched[0].endswith(" " + url)
                      and fetched[1].endswith(" usr/src/sys"),
                      f"--fetch-src on {release}: fetch {url}, extract usr/src/sys ({fetched})")


# --- README and dry run -----------------------------------------------------------


def readme_block(after_heading, marker=None):
    """The first ```sh block under the heading (and after `marker`)."""
    text = README.read_text()
    start = text.find(after_heading)
    if start < 0:
        return None
    if marker is not None:
        start = text.find(marker, start)
        if start < 0:
            return None
    m = re.compile(r"```sh\n(.*?)```", re.S).search(text, start)
    return m.group(1).splitlines() if m else None


def strip_comment(line):
    return re.sub(r"\s+#.*$", "", line).strip()


def check_dry_run():
    p = run([*SHELL, str(SCRIPT), "--dry-run"])
    dry = commands(p.stdout)
    check(p.returncode == 0 and len(dry) > 10, f"--dry-run on Linux: exit 0, prints the commands ({p.returncode})")
    documented = readme_block("## Testing in a FreeBSD VM", "exactly these commands")
    check(documented is not None, "kmod/README.md 'Testing in a FreeBSD VM' lists the script's commands")
    if documented is not None:
        documented = [strip_comment(x) for x in documented if strip_comment(x)]
        check(documented == dry, "README's command list is the dry run's, line for line"
              + ("" if documented == dry else f"\n  README  {documented}\n  dry run {dry}"))
    build = readme_block("## Building on FreeBSD 15")
    check(build is not None, "kmod/README.md 'Building on FreeBSD 15' has a sh block")
    if build is not None:
        build = [strip_comment(x) for x in build if strip_comment(x) and not x.startswith("export ")]
        check(subsequence(build, dry), "README's native build commands are the script's, in order"
              + ("" if subsequence(build, dry) else f"\n  README {build}\n  dry run {dry}"))
    p = run([*SHELL, str(SCRIPT), "--dry-run", "--provider", "ada1", "--yes-destroy-data", "--skip-build"])
    dry_provider = commands(p.stdout)
    check(p.returncode == 0 and not any(c.startswith(("mdconfig", "pkg", "make", "cargo")) for c in dry_provider)
          and "target/rzilctl attach ada1" in dry_provider,
          "--dry-run --provider ada1 --skip-build: no md disk, no build, attaches ada1")
    return dry


# --- CI definitions -------------------------------------------------------------


def check_cirrus():
    doc = yaml.safe_load(CIRRUS.read_text())
    tasks = {k: v for k, v in doc.items() if k == "task" or k.endswith("_task")}
    check(set(tasks) == set(doc), f".cirrus.yml holds only tasks ({sorted(doc)})")
    check(len(tasks) >= 1, ".cirrus.yml has a task")
    hosted = [t for t in tasks.values() if "freebsd_instance" in t]
    check(len(hosted) == 1 and re.fullmatch(r"freebsd-15-\d+-amd64-(ufs|zfs)",
                                            str(hosted[0]["freebsd_instance"].get("image_family", ""))),
          ".cirrus.yml: a freebsd_instance task on an official FreeBSD 15 amd64 image family")
    if hosted:
        mem = str(hosted[0]["freebsd_instance"].get("memory", ""))
        check(re.fullmatch(r"\d+G", mem) is not None and int(mem[:-1]) >= 8, f".cirrus.yml: memory >= 8G ({mem})")
    check(any(t.get("persistent_worker", {}).get("labels", {}).get("os") == "freebsd" for t in tasks.values()),
          ".cirrus.yml: a persistent_worker task for `cirrus run` on a self-hosted FreeBSD machine")
    for name, task in tasks.items():
        steps = {k: v for k, v in task.items() if k.endswith("_script") or k == "script"}
        others = [k for k in task if k.endswith(("_script", "_cache", "_artifacts", "_background_script"))
                  and k not in steps]
        ok = len(steps) == 1 and not others and all(isinstance(v, str) and CI_COMMAND.match(v) for v in steps.values())
        check(ok, f".cirrus.yml {name}: one step, `sh {SCRIPT_REL} ...` ({steps})")
    text = CIRRUS.read_text()
    check("shut down on 2026-06-01" in text and "cirrus run" in text,
          ".cirrus.yml says the hosted service is gone and how to run it with the Cirrus CLI")


def check_workflow():
    doc = yaml.safe_load(WORKFLOW.read_text())
    # YAML 1.1 reads the bare key `on` as true.
    on = doc.get("on", doc.get(True))
    check(isinstance(on, dict) and {"push", "pull_request", "workflow_dispatch"} <= set(on),
          "freebsd.yml runs on push, pull_request and workflow_dispatch")
    jobs = doc.get("jobs", {})
    check(len(jobs) == 1, f"freebsd.yml has one job ({list(jobs)})")
    for name, job in jobs.items():
        steps = job.get("steps", [])
        vm = [s for s in steps if str(s.get("uses", "")).startswith("vmactions/freebsd-vm@")]
        rest = [s for s in steps if s not in vm]
        check(len(vm) == 1, f"freebsd.yml {name}: one vmactions/freebsd-vm step")
        check(all(set(s) == {"uses"} and str(s["uses"]).startswith("actions/checkout@") for s in rest),
              f"freebsd.yml {name}: the only other step is actions/checkout (no run: of its own)")
        if not vm:
            continue
        uses = vm[0]["uses"]
        check(re.fullmatch(r"vmactions/freebsd-vm@v\d+\.\d+\.\d+", uses) is not None,
              f"freebsd.yml pins vmactions/freebsd-vm by a release tag ({uses})")
        with_ = vm[0].get("with", {})
        check(str(with_.get("release", "")).startswith("15."), f"freebsd.yml boots FreeBSD 15 ({with_.get('release')})")
        check(with_.get("usesh") is True, "freebsd.yml: usesh: true")
        check(CI_COMMAND.match(str(with_.get("run", "")).strip()) is not None,
              f"freebsd.yml run: is one `sh {SCRIPT_REL} ...` ({with_.get('run')!r})")
        check("prepare" not in with_, "freebsd.yml: no prepare: (the script installs what it needs)")
        check(int(with_.get("mem", 0)) >= 8192, f"freebsd.yml: mem >= 8192 MiB ({with_.get('mem')})")


def main():
    global SHELL
    os.chdir(REPO)
    check_static()
    for SHELL in SHELLS:
        check_arguments()
        dry = check_dry_run()
        check_fake_freebsd(dry)
    SHELL = SHELLS[0]
    check_cirrus()
    check_workflow()
    if failures:
        print(f"vmci-check: {len(failures)} failed", file=sys.stderr)
        return 1
    print("vmci-check: all passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())

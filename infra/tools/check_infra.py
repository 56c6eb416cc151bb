#!/usr/bin/env python3
"""The checks of scripts/check-infra written here rather than taken from a tool.

Each subcommand is one check: it prints what it looked at and exits 0 (passed) or 1 (failed).
Run by scripts/check-infra in target/infra-venv/tools (PyYAML, python-hcl2).

  dockerignore    the image's build context (.dockerignore) has what the build reads, and no
                  build outputs, data or .git
  tf-parse        every .tf parses (python-hcl2)
  tf-format       every .tf is formatted as `terraform fmt` would (see TfFormat)
  k8s-render      renders the kustomize overlays (kubectl's kustomize when present, else the
                  subset of kustomize infra/k8s uses), and checks the two agree
  k8s-ferry       Ferry-specific rules of the rendered manifests
  env-names       every FERRY_* variable the manifests and the Dockerfile set is one Ferry reads
  rules           the Prometheus rules' structure (what promtool checks, where it is missing)
  dashboard       the Grafana dashboard: JSON, unique ids, a query in every target
  dashboard-rules writes the dashboard's queries as recording rules (for `promtool check rules`)
  permissions     infra/permissions.json is sorted and equals what the Terraform modules grant
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
OUT = ROOT / "target" / "infra-check"
SHAPES = ("embedded", "scale-out")


class Failed(Exception):
    pass


def rel(p: Path) -> str:
    return str(p.relative_to(ROOT))


def tf_files() -> list[Path]:
    return sorted((INFRA / "terraform").rglob("*.tf"))


# --- Terraform -------------------------------------------------------------------------------


def tf_parse() -> None:
    import hcl2

    for f in tf_files():
        with f.open() as fh:
            try:
                hcl2.load(fh)
            except Exception as e:  # noqa: BLE001 - any parser error is the finding
                raise Failed(f"{rel(f)}: does not parse: {e}") from e
        print(f"  parsed {rel(f)}")


class TfFormat:
    """The rules of `terraform fmt` that hand-written files break, checked without terraform
    (hclwrite's, as far as Ferry's modules use HCL):

    - indentation: two spaces per level; a line whose brackets open more than they close
      opens one level (`jsonencode({` is one), closing brackets close the levels they opened,
      and a line starting with closing brackets is dedented by them; no tabs, no trailing
      whitespace;
    - consecutive one-line attribute assignments (`name = value`) at the same indentation
      align their `=` one space after the longest name; a blank line, a comment, a block, a
      closing bracket or a multi-line value ends such a run (a run of one gets one space);
    - one space after `=`; the file ends with one newline; never two blank lines in a row; no
      blank line right after `{` or right before `}`.
    Heredoc bodies are left alone.
    """

    ATTR = re.compile(r'^( *)("[^"]*"|[A-Za-z_][A-Za-z0-9_-]*)( *)=(?!=)( *)(.*)$')

    @staticmethod
    def brackets(code: str) -> tuple[int, int]:
        """(closing brackets before anything else on the line, net bracket change), with
        strings, interpolations and comments accounted for."""
        leading = net = 0
        started = in_str = False
        interp = 0
        i = 0
        while i < len(code):
            c = code[i]
            if in_str:
                if c == "\\":
                    i += 2
                    continue
                if interp == 0 and c == '"':
                    in_str = False
                elif code.startswith("${", i) or code.startswith("%{", i):
                    interp += 1
                    i += 2
                    continue
                elif interp > 0 and c == "}":
                    interp -= 1
                i += 1
                continue
            if c == '"':
                in_str = started = True
            elif c == "#" or code.startswith("//", i):
                break
            elif c in "{[(":
                net += 1
                started = True
            elif c in "}])":
                net -= 1
                if not started:
                    leading += 1
            elif not c.isspace():
                started = True
            i += 1
        return leading, net

    @staticmethod
    def pop(stack: list[int], n: int) -> list[int]:
        stack = list(stack)
        while n > 0 and stack:
            if n < stack[-1]:
                stack[-1] -= n
                n = 0
            else:
                n -= stack.pop()
        return stack

    def check(self, path: Path) -> list[str]:
        text = path.read_text()
        problems: list[str] = []
        if not text.endswith("\n") or text.endswith("\n\n"):
            problems.append("the file must end with exactly one newline")
        lines = text.split("\n")[:-1]
        stack: list[int] = []
        heredoc: str | None = None
        run: list[tuple[int, int, int, str]] = []  # (line, indent, column of '=', name)
        prev_blank = False
        prev = ""

        def close_run() -> None:
            if len(run) == 1:
                ln, indent, col, name = run[0]
                if col != indent + len(name) + 1:
                    problems.append(f"line {ln}: one space before the `=` of {name}")
            elif run:
                want = run[0][1] + max(len(r[3]) for r in run) + 1
                for ln, _, col, name in run:
                    if col != want:
                        problems.append(
                            f"line {ln}: `=` of {name} in column {col + 1}; terraform fmt "
                            f"aligns this run's at {want + 1}"
                        )
            run.clear()

        for n, line in enumerate(lines, 1):
            if heredoc is not None:
                if line.strip() == heredoc:
                    heredoc = None
                continue
            if "\t" in line:
                problems.append(f"line {n}: tab")
            if line != line.rstrip():
                problems.append(f"line {n}: trailing whitespace")
            stripped = line.strip()
            if not stripped:
                close_run()
                if prev_blank:
                    problems.append(f"line {n}: two blank lines in a row")
                if prev.endswith("{") and not prev.startswith("#"):
                    problems.append(f"line {n}: blank line right after an opening brace")
                prev_blank = True
                continue
            leading, net = self.brackets(stripped)
            want = 2 * len(self.pop(stack, leading))
            indent = len(line) - len(line.lstrip(" "))
            if indent != want:
                problems.append(f"line {n}: indented {indent}, expected {want}")
            if prev_blank and stripped.startswith("}"):
                problems.append(f"line {n}: blank line right before a closing brace")
            is_comment = stripped.startswith(("#", "//", "/*"))
            m = None if is_comment else self.ATTR.match(line)
            if m is not None and net == 0 and leading == 0:
                if run and (run[-1][0] != n - 1 or run[-1][1] != indent):
                    close_run()
                if m.group(4) != " ":
                    problems.append(f"line {n}: one space after `=`")
                run.append((n, indent, indent + len(m.group(2)) + len(m.group(3)), m.group(2)))
            else:
                close_run()
                if m is not None and (m.group(3) != " " or m.group(4) != " "):
                    problems.append(f"line {n}: one space around the `=` of a multi-line value")
            if not is_comment:
                hd = re.search(r"<<-?([A-Za-z_]+)$", stripped)
                if hd:
                    heredoc = hd.group(1)
            if net > 0:
                stack.append(net)
            elif net < 0:
                if -net > sum(stack):
                    problems.append(f"line {n}: more closing than opening brackets")
                stack = self.pop(stack, -net)
            prev_blank = False
            prev = stripped
        close_run()
        if stack:
            problems.append("brackets left open at the end of the file")
        return problems


def tf_format() -> None:
    checker = TfFormat()
    bad = 0
    for f in tf_files():
        problems = checker.check(f)
        for p in problems:
            print(f"  {rel(f)}: {p}")
        bad += len(problems)
        if not problems:
            print(f"  formatted {rel(f)}")
    if bad:
        raise Failed(f"{bad} formatting problems (terraform fmt would fix them)")


# --- The image's build context --------------------------------------------------------------


def dockerignore_patterns() -> list[tuple[bool, re.Pattern]]:
    """.dockerignore as Docker reads it: each line a path pattern (Go's filepath.Match plus
    `**`), `!` re-including; the last matching line decides; a pattern matching a directory
    matches everything under it."""
    out = []
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pat = os.path.normpath(line[1:] if negate else line).lstrip("/")
        rx = ""
        i = 0
        while i < len(pat):
            if pat.startswith("**", i):
                rx += ".*"
                i += 2
                if pat.startswith("/", i):
                    rx = rx[:-2] + "(?:.*/)?"
                    i += 1
                continue
            c = pat[i]
            rx += "[^/]*" if c == "*" else "[^/]" if c == "?" else re.escape(c)
            i += 1
        out.append((negate, re.compile(rx + "(?:/.*)?$")))
    return out


def ignored(path: str, patterns) -> bool:
    result = False
    for negate, rx in patterns:
        if rx.match(path):
            result = not negate
    return result


def dockerignore() -> None:
    """The build context keeps what `cargo build --release --locked -p ferry` reads and drops
    build outputs, data and VCS files."""
    patterns = dockerignore_patterns()
    negated = [rx for neg, rx in patterns if neg]
    included: list[str] = []
    size = 0
    for dirpath, dirnames, filenames in os.walk(ROOT):
        reldir = os.path.relpath(dirpath, ROOT)
        reldir = "" if reldir == "." else reldir + "/"
        keep = []
        for d in dirnames:
            p = reldir + d
            # Prune an ignored directory unless a `!` pattern could re-include below it.
            if ignored(p, patterns) and not any(
                rx.pattern.startswith(re.escape(p).replace("\\-", "-")) for rx in negated
            ):
                continue
            keep.append(d)
        dirnames[:] = keep
        for f in filenames:
            p = reldir + f
            if not ignored(p, patterns):
                included.append(p)
                size += os.path.getsize(os.path.join(dirpath, f))
    inc = set(included)
    members = re.findall(r'"(crates/[a-z-]+)"', (ROOT / "Cargo.toml").read_text())
    needed = ["Cargo.toml", "Cargo.lock", "rust-toolchain.toml", "crates/store/build.rs", "tests/blackbox/main.rs"]
    needed += [f"{m}/Cargo.toml" for m in members] + [f"{m}/src/lib.rs" for m in members if (ROOT / m / "src/lib.rs").exists()]
    needed += [rel(p) for p in (ROOT / "migrations").rglob("*.sql")]
    needed += [rel(p) for p in (ROOT / "sandbox" / "wit").rglob("*.wit")]
    problems = [f"{n} is needed by the build but ignored" for n in needed if n not in inc]
    for prefix in ("target/", ".git/", "ferry-data/", "sandbox/out/", "sandbox/target/", "infra/"):
        leaked = [p for p in inc if p.startswith(prefix) or f"/{prefix}" in p and prefix != "infra/"]
        if leaked:
            problems.append(f"{prefix} is in the build context ({len(leaked)} files, e.g. {leaked[0]})")
    if size > 64 * 1024 * 1024:
        problems.append(f"the build context is {size / 1e6:.0f} MB")
    for p in problems:
        print(f"  {p}")
    if problems:
        raise Failed(f"{len(problems)} problems")
    print(f"  build context: {len(included)} files, {size / 1e6:.1f} MB; all {len(needed)} the build reads are in it")


# --- Kubernetes ------------------------------------------------------------------------------

ALLOWED_KUSTOMIZE_KEYS = {"apiVersion", "kind", "resources", "namespace", "images"}
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "PersistentVolume"}


def load_yaml_docs(path: Path) -> list[dict]:
    import yaml

    with path.open() as fh:
        return [d for d in yaml.safe_load_all(fh) if d]


def render_python(directory: Path) -> list[dict]:
    """kustomize, for the keys infra/k8s uses: resources (files and directories), namespace,
    images (newName, newTag, digest). Anything else is refused, so this can't silently differ."""
    kfile = directory / "kustomization.yaml"
    k = load_yaml_docs(kfile)[0]
    unknown = set(k) - ALLOWED_KUSTOMIZE_KEYS
    if unknown:
        raise Failed(f"{rel(kfile)}: keys {sorted(unknown)} are beyond what check-infra renders")
    objects: list[dict] = []
    for r in k.get("resources", []):
        p = directory / r
        objects.extend(render_python(p) if p.is_dir() else load_yaml_docs(p))
    ns = k.get("namespace")
    if ns:
        for o in objects:
            if o["kind"] == "Namespace":
                o["metadata"]["name"] = ns
            elif o["kind"] not in CLUSTER_SCOPED:
                o["metadata"]["namespace"] = ns
    for img in k.get("images", []):
        for o in objects:
            for c in containers_of(o):
                name, _, _ = c["image"].partition("@")
                base = name.rsplit(":", 1)[0] if ":" in name.split("/")[-1] else name
                if base != img["name"]:
                    continue
                new = img.get("newName", base)
                tag = img.get("newTag")
                if tag is None and ":" in name.split("/")[-1]:
                    tag = name.rsplit(":", 1)[1]
                c["image"] = new + (f":{tag}" if tag else "")
                if img.get("digest"):
                    c["image"] = new + "@" + img["digest"]
    return objects


def pod_spec(o: dict) -> dict | None:
    spec = o.get("spec", {})
    if o["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
        return spec["template"]["spec"]
    if o["kind"] == "CronJob":
        return spec["jobTemplate"]["spec"]["template"]["spec"]
    if o["kind"] == "Pod":
        return spec
    return None


def containers_of(o: dict) -> list[dict]:
    ps = pod_spec(o)
    if ps is None:
        return []
    return ps.get("containers", []) + ps.get("initContainers", [])


def key(o: dict) -> tuple[str, str, str]:
    return (o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"])


def k8s_render() -> None:
    import yaml

    OUT.mkdir(parents=True, exist_ok=True)
    kubectl = shutil.which("kubectl")
    for shape in SHAPES:
        d = INFRA / "k8s" / shape
        ours = render_python(d)
        target = OUT / f"k8s-{shape}.yaml"
        if kubectl:
            r = subprocess.run(
                [kubectl, "kustomize", str(d)], capture_output=True, text=True, check=False
            )
            if r.returncode != 0:
                raise Failed(f"kubectl kustomize {rel(d)}: {r.stderr.strip()}")
            theirs = [o for o in yaml.safe_load_all(r.stdout) if o]
            a = {key(o): o for o in ours}
            b = {key(o): o for o in theirs}
            if a != b:
                only = sorted(set(a) ^ set(b))
                diff = [k for k in a if k in b and a[k] != b[k]]
                raise Failed(
                    f"{rel(d)}: check-infra's rendering differs from kubectl kustomize "
                    f"(objects only in one: {only}; differing: {diff})"
                )
            target.write_text(r.stdout)
            print(f"  {rel(d)}: {len(theirs)} objects (kubectl kustomize; the fallback agrees)")
        else:
            target.write_text(yaml.safe_dump_all(ours, sort_keys=False))
            print(f"  {rel(d)}: {len(ours)} objects (no kubectl: check-infra's kustomize subset)")


def rendered(shape: str) -> list[dict]:
    p = OUT / f"k8s-{shape}.yaml"
    if not p.exists():
        raise Failed(f"{rel(p)} is missing: run k8s-render first")
    return load_yaml_docs(p)


def mebibytes(quantity: str) -> int:
    units = {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024, "Ti": 1024 * 1024, "M": 1e6 / 2**20, "G": 1e9 / 2**20}
    m = re.fullmatch(r"([0-9.]+)([KMGT]i?)?", str(quantity))
    if not m:
        raise Failed(f"cannot read the quantity {quantity!r}")
    return int(float(m.group(1)) * units.get(m.group(2) or "", 1 / 2**20))


def k8s_ferry() -> None:
    """What Ferry needs of its manifests, beyond what the schema and checkov see."""
    problems: list[str] = []
    for shape in SHAPES:
        objs = rendered(shape)
        by_kind: dict[str, list[dict]] = {}
        for o in objs:
            by_kind.setdefault(o["kind"], []).append(o)
        secret_refs: set[tuple[str, str]] = set()
        for o in objs:
            name = f"{shape}: {o['kind']}/{o['metadata']['name']}"
            ps = pod_spec(o)
            if ps is None:
                continue
            if ps.get("automountServiceAccountToken") is not False:
                problems.append(f"{name}: automountServiceAccountToken must be false")
            if ps.get("enableServiceLinks") is not False:
                problems.append(
                    f"{name}: enableServiceLinks must be false (Services named ferry-* would "
                    "inject FERRY_*_PORT variables)"
                )
            psc = ps.get("securityContext", {})
            if psc.get("runAsNonRoot") is not True or psc.get("runAsUser") != 65532:
                problems.append(f"{name}: the pod must run as 65532, non-root")
            volumes = {v["name"]: v for v in ps.get("volumes", [])}
            for c in ps["containers"]:
                sc = c.get("securityContext", {})
                if not (
                    sc.get("readOnlyRootFilesystem") is True
                    and sc.get("allowPrivilegeEscalation") is False
                    and sc.get("capabilities", {}).get("drop") == ["ALL"]
                    and sc.get("seccompProfile", {}).get("type") == "RuntimeDefault"
                ):
                    problems.append(f"{name}: container {c['name']} security context incomplete")
                if ":latest" in c["image"] or ":" not in c["image"].split("/")[-1]:
                    problems.append(f"{name}: image {c['image']} is not pinned by tag")
                env = {e["name"]: e for e in c.get("env", [])}
                for e in env.values():
                    ref = e.get("valueFrom", {}).get("secretKeyRef")
                    if ref:
                        secret_refs.add((ref["name"], ref["key"]))
                    if "value" in e and re.search(r"TOKEN|PEPPER|PASSWORD|DATABASE_URL|KEY$", e["name"]):
                        problems.append(f"{name}: {e['name']} must come from a Secret, not a value")
                mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
                if "/var/lib/ferry" not in mounts:
                    problems.append(f"{name}: no volume at the data directory /var/lib/ferry")
                args = c.get("args", [])
                role = args[args.index("--role") + 1] if "--role" in args else None
                if role in ("all", "executor"):
                    scratch = env.get("FERRY_SCRATCH_DIR", {}).get("value")
                    vol = volumes.get(mounts.get(scratch or "", ""), {})
                    if vol.get("emptyDir", {}).get("medium") != "Memory":
                        problems.append(
                            f"{name}: FERRY_SCRATCH_DIR must be a memory-backed emptyDir"
                        )
                    # Ferry's default budget is 75 % of the node's memory, not the pod's.
                    budget = env.get("FERRY_EXECUTOR_MEMORY_MB", {}).get("value")
                    limit = mebibytes(c.get("resources", {}).get("limits", {}).get("memory", "0"))
                    scratch_mb = mebibytes(vol.get("emptyDir", {}).get("sizeLimit", "0"))
                    if budget is None or not budget.isdigit() or int(budget) + scratch_mb >= limit:
                        problems.append(
                            f"{name}: FERRY_EXECUTOR_MEMORY_MB must be set, below the memory "
                            "limit less the scratch volume"
                        )
                if role in ("all", "api"):
                    if c.get("livenessProbe", {}).get("httpGet", {}).get("path") != "/healthz":
                        problems.append(f"{name}: livenessProbe must GET /healthz")
                    if c.get("readinessProbe", {}).get("httpGet", {}).get("path") != "/readyz":
                        problems.append(f"{name}: readinessProbe must GET /readyz")
                if shape == "scale-out" and role in ("api", "scheduler", "executor"):
                    for var in ("FERRY_DATABASE_URL", "FERRY_API_KEY_PEPPER", "FERRY_ROOT_KEY"):
                        ref = env.get(var, {}).get("valueFrom", {}).get("secretKeyRef")
                        if not ref or ref.get("optional"):
                            problems.append(f"{name}: {var} must come from a required Secret")
        # The internal listener: reachable only from the control plane's namespace.
        internal = [
            p
            for p in by_kind.get("NetworkPolicy", [])
            for rule in p["spec"].get("ingress", [])
            if any(port.get("port") == 8081 for port in rule.get("ports", []))
        ]
        if not internal:
            problems.append(f"{shape}: no NetworkPolicy admits the internal listener (8081)")
        for p in internal:
            for rule in p["spec"]["ingress"]:
                froms = rule.get("from", [])
                if not froms or any("namespaceSelector" not in f or "ipBlock" in f for f in froms):
                    problems.append(
                        f"{shape}: NetworkPolicy/{p['metadata']['name']} must admit 8081 only "
                        "from a namespace selector"
                    )
        if not any(
            p["spec"].get("podSelector") == {} and set(p["spec"].get("policyTypes", [])) == {"Ingress", "Egress"}
            for p in by_kind.get("NetworkPolicy", [])
        ):
            problems.append(f"{shape}: no default-deny NetworkPolicy")
        if shape == "scale-out":
            for kind in ("PodDisruptionBudget", "HorizontalPodAutoscaler", "Job"):
                if kind not in by_kind:
                    problems.append(f"{shape}: no {kind}")
        print(f"  {shape}: {len(objs)} objects; Secrets referenced: {sorted(secret_refs)}")
    for p in problems:
        print(f"  {p}")
    if problems:
        raise Failed(f"{len(problems)} problems")


# Variables the manifests may set before Ferry reads them (announced, not yet in the code).
UPCOMING_ENV: dict[str, str] = {}


def env_names() -> None:
    read: set[str] = set()
    for f in (ROOT / "crates").rglob("*.rs"):
        if "/tests/" in str(f):
            continue
        read.update(re.findall(r'"(FERRY_[A-Z0-9_]+)"', f.read_text()))
    # ferry_core::endpoint::ENV and the like: constants naming a variable.
    for f in (ROOT / "crates").rglob("*.rs"):
        read.update(re.findall(r'const\s+ENV\s*:\s*&str\s*=\s*"(FERRY_[A-Z0-9_]+)"', f.read_text()))
    used: dict[str, set[str]] = {}
    for f in list((INFRA / "k8s").rglob("*.yaml")) + [INFRA / "container" / "Dockerfile"]:
        text = "\n".join(l for l in f.read_text().splitlines() if not l.lstrip().startswith("#"))
        for name in re.findall(r"\b(FERRY_[A-Z0-9_]+)\b", text):
            used.setdefault(name, set()).add(rel(f))
    unknown = {n: fs for n, fs in used.items() if n not in read and n not in UPCOMING_ENV}
    for n in sorted(used):
        note = " (not read yet: " + UPCOMING_ENV[n] + ")" if n in UPCOMING_ENV and n not in read else ""
        print(f"  {n}{note}")
    if unknown:
        raise Failed(f"set but never read by Ferry: {unknown}")


# --- Prometheus and Grafana ------------------------------------------------------------------

DURATION = re.compile(r"^([0-9]+(ms|s|m|h|d|w|y))+$")


def rules() -> None:
    import yaml

    problems: list[str] = []
    path = INFRA / "observability" / "alerts.yaml"
    doc = yaml.safe_load(path.read_text())
    names: set[str] = set()
    count = 0
    if set(doc) != {"groups"}:
        problems.append("top level must be just `groups`")
    for g in doc.get("groups", []):
        if set(g) - {"name", "interval", "rules", "limit"} or "name" not in g:
            problems.append(f"group {g.get('name')}: unexpected keys {sorted(g)}")
        for r in g.get("rules", []):
            count += 1
            what = r.get("alert") or r.get("record")
            allowed = {"alert", "expr", "for", "keep_firing_for", "labels", "annotations"} if "alert" in r else {"record", "expr", "labels"}
            if set(r) - allowed or ("alert" in r) == ("record" in r):
                problems.append(f"rule {what}: unexpected keys {sorted(r)}")
            if not isinstance(r.get("expr"), str) or not r["expr"].strip():
                problems.append(f"rule {what}: no expr")
            elif r["expr"].count("(") != r["expr"].count(")") or r["expr"].count("{") != r["expr"].count("}"):
                problems.append(f"rule {what}: unbalanced brackets in expr")
            if "for" in r and not DURATION.match(str(r["for"])):
                problems.append(f"rule {what}: `for` is not a duration")
            if "alert" in r:
                if what in names:
                    problems.append(f"alert {what} defined twice")
                names.add(what)
                if r.get("labels", {}).get("severity") not in ("info", "warning", "critical"):
                    problems.append(f"alert {what}: severity must be info, warning or critical")
                if not {"summary", "description"} <= set(r.get("annotations", {})):
                    problems.append(f"alert {what}: needs summary and description annotations")
                if not re.search(r"\bferry_|\bup\b", r.get("expr", "")):
                    problems.append(f"alert {what}: names no ferry_ metric")
    readme = (INFRA / "observability" / "README.md").read_text()
    metrics = set(re.findall(r"\b(ferry_[a-z_]+?)(?:_bucket|_count|_sum)?\b", path.read_text()))
    missing = sorted(m for m in metrics if m not in readme)
    if missing:
        problems.append(f"metrics not described in infra/observability/README.md: {missing}")
    for p in problems:
        print(f"  {p}")
    if problems:
        raise Failed(f"{len(problems)} problems")
    print(f"  {rel(path)}: {len(doc['groups'])} groups, {count} rules, all metrics documented")


def dashboard_doc() -> dict:
    path = INFRA / "observability" / "grafana-dashboard.json"
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise Failed(f"{rel(path)}: not JSON: {e}") from e


def dashboard() -> None:
    d = dashboard_doc()
    problems: list[str] = []
    for k in ("title", "uid", "panels", "schemaVersion", "templating"):
        if k not in d:
            problems.append(f"no {k}")
    ids = [p.get("id") for p in d.get("panels", [])]
    if len(ids) != len(set(ids)) or None in ids:
        problems.append("panel ids must be present and unique")
    targets = 0
    for p in d.get("panels", []):
        if p.get("type") == "row":
            continue
        if "gridPos" not in p:
            problems.append(f"panel {p.get('title')}: no gridPos")
        for t in p.get("targets", []):
            targets += 1
            if not t.get("expr", "").strip():
                problems.append(f"panel {p.get('title')}: a target without a query")
            if t.get("datasource", {}).get("uid") != "${datasource}":
                problems.append(f"panel {p.get('title')}: use the $datasource variable")
    titles = " ".join(p.get("title", "").lower() for p in d.get("panels", []))
    for needed in ("runs by state", "pool", "submit", "cloud api errors", "executor utilisation"):
        if needed not in titles:
            problems.append(f"no panel about {needed!r}")
    for p in problems:
        print(f"  {p}")
    if problems:
        raise Failed(f"{len(problems)} problems")
    print(f"  {len(d['panels'])} panels, {targets} queries")
    metrics = {m for p in d["panels"] for t in p.get("targets", []) for m in re.findall(r"\b(ferry_[a-z_]+?)(?:_bucket|_count|_sum)?\b", t.get("expr", ""))}
    readme = (INFRA / "observability" / "README.md").read_text()
    missing = sorted(m for m in metrics if m not in readme)
    if missing:
        raise Failed(f"metrics not described in infra/observability/README.md: {missing}")


def dashboard_rules() -> None:
    """The dashboard's queries as recording rules, so promtool parses them too."""
    import yaml

    d = dashboard_doc()
    rules_ = []
    for p in d["panels"]:
        for t in p.get("targets", []):
            expr = t["expr"].replace("$pool_type", ".*").replace("$__rate_interval", "5m")
            rules_.append({"record": f"dashboard:panel_{p['id']}:{t['refId'].lower()}", "expr": expr})
    OUT.mkdir(parents=True, exist_ok=True)
    out = OUT / "dashboard-rules.yaml"
    out.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules_}]}, sort_keys=False))
    print(f"  {len(rules_)} queries written to {rel(out)}")


# --- Permissions -----------------------------------------------------------------------------


def unquote(v):
    if isinstance(v, str) and len(v) >= 2 and v[0] == v[-1] == '"':
        return v[1:-1]
    return v


def statements(block) -> list[dict]:
    """The statement blocks of an aws_iam_policy_document, dynamic ones included."""
    out = []
    for s in block.get("statement", []):
        out.append(s)
    for dyn in block.get("dynamic", []):
        for name, body in dyn.items():
            if unquote(name) == "statement":
                for content in body.get("content", []):
                    out.append(content)
    return out


def permissions() -> None:
    import hcl2

    path = INFRA / "permissions.json"
    perms = json.loads(path.read_text())
    problems: list[str] = []

    def sorted_list(where: str, xs: list) -> None:
        if xs != sorted(set(xs)):
            problems.append(f"{where} must be sorted and without duplicates")

    sorted_list("ecs.actions", perms["ecs"]["actions"])
    sorted_list("cloud-run.roles", perms["cloud-run"]["roles"])
    sorted_list("cloud-run.permissions", perms["cloud-run"]["permissions"])

    with (INFRA / "terraform" / "aws-ecs-role" / "main.tf").open() as fh:
        aws = hcl2.load(fh)
    docs: dict[str, dict] = {}
    for data in aws.get("data", []):
        for typ, named in data.items():
            if unquote(typ) == "aws_iam_policy_document":
                for name, body in named.items():
                    docs[unquote(name)] = body
    granted = sorted({unquote(a) for s in statements(docs["permissions"]) for a in s["actions"]})
    if granted != perms["ecs"]["actions"]:
        problems.append(
            f"aws-ecs-role grants {granted}, permissions.json says {perms['ecs']['actions']}"
        )
    trust = sorted({unquote(a) for s in statements(docs["trust"]) for a in s["actions"]})
    if trust != perms["ecs"].get("trust_actions", []):
        problems.append(f"aws-ecs-role's trust allows {trust}")

    with (INFRA / "terraform" / "gcp-cloud-run" / "main.tf").open() as fh:
        gcp_text = fh.read()
    gcp = hcl2.loads(gcp_text)
    roles: set[str] = set()
    wi_roles: set[str] = set()
    locals_ = {k: v for blk in gcp.get("locals", []) for k, v in blk.items()}
    for res in gcp.get("resource", []):
        for typ, named in res.items():
            for name, body in named.items():
                role = unquote(body.get("role"))
                if role is None:
                    continue
                if role == "${each.value}":
                    role_values = {unquote(r) for r in locals_.get("project_roles", [])}
                else:
                    role_values = {role}
                if role_values == {"roles/iam.workloadIdentityUser"}:
                    wi_roles |= role_values
                else:
                    roles |= role_values
    if sorted(roles) != perms["cloud-run"]["roles"]:
        problems.append(f"gcp-cloud-run grants {sorted(roles)}, permissions.json says {perms['cloud-run']['roles']}")
    if sorted(wi_roles) != perms["cloud-run"].get("workload_identity_roles", []):
        problems.append(f"gcp-cloud-run's workload identity grants {sorted(wi_roles)}")
    for p in problems:
        print(f"  {p}")
    if problems:
        raise Failed(f"{len(problems)} problems")
    print(f"  ecs: {len(granted)} actions granted = permissions.json; trust: {trust}")
    print(f"  cloud-run: roles {sorted(roles)} = permissions.json; workload identity: {sorted(wi_roles)}")


COMMANDS = {
    "dockerignore": dockerignore,
    "tf-parse": tf_parse,
    "tf-format": tf_format,
    "k8s-render": k8s_render,
    "k8s-ferry": k8s_ferry,
    "env-names": env_names,
    "rules": rules,
    "dashboard": dashboard,
    "dashboard-rules": dashboard_rules,
    "permissions": permissions,
}


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[1] not in COMMANDS:
        print(__doc__, file=sys.stderr)
        return 2
    os.chdir(ROOT)
    try:
        COMMANDS[argv[1]]()
    except Failed as e:
        print(f"  {argv[1]}: {e}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

"""The deployment files hold together with the code they start.

platform/Dockerfile, platform/compose.yaml, platform/pgbouncer/ and platform/k8s/ are never run
in a container here (there is no Docker daemon on the project's machines), so this is what keeps
them from drifting away from the code: the files parse; every command they run exists, with
options its own parser accepts; every variable they set is one the code reads; the web probes
ask routes the app serves, on the port gunicorn binds, with a Host it accepts; every queue the
settings send a task to has a worker, ingestion and evaluation never share one, and KEDA scales
each worker on a queue it consumes; PgBouncer is set up as docs/pgbouncer.md says; and the
image builds llama-cpp-python for the CPUs the README promises (x86-64-v3), not for the machine
that builds it.
"""

from __future__ import annotations

import ast
import configparser
import fnmatch
import importlib
import re
import shlex
from functools import cache
from pathlib import Path
from types import ModuleType
from urllib.parse import urlsplit

import pytest
import yaml
from django.conf import settings

ROOT = Path(__file__).resolve().parents[2]
PLATFORM = ROOT / "platform"
DOCKERFILE = PLATFORM / "Dockerfile"
COMPOSE = PLATFORM / "compose.yaml"
K8S = PLATFORM / "k8s"
PGBOUNCER = PLATFORM / "pgbouncer"

# Where the code reads its environment: the settings, the entry points, gunicorn's config.
ENV_READERS = [
    ROOT / "config" / "settings.py",
    ROOT / "config" / "servers.py",
    ROOT / "config" / "web_worker.py",
    ROOT / "platform" / "gunicorn.conf.py",
    ROOT / "manage.py",
]
_ENV_READ = re.compile(
    r'(?:environ\.get|environ\.setdefault|getenv|env_bool|env_required)\(\s*"([A-Z][A-Z0-9_]*)"'
    r'|environ\["([A-Z][A-Z0-9_]*)"\]'
)
# Read by the interpreter and pip in the image, not by Tenantry.
IMAGE_TOOL_VARIABLES = {"PATH", "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE"}
# Services of compose.yaml that run other programs (their variables are those programs' own).
DATA_SERVICES = {"postgres", "redis", "pgbouncer"}
TENANTRY_IMAGE = "tenantry"


# --- loading ---------------------------------------------------------------------------------


@cache
def code_variables() -> frozenset[str]:
    names = set()
    for path in ENV_READERS:
        for match in _ENV_READ.finditer(path.read_text()):
            names.add(match.group(1) or match.group(2))
    return frozenset(names)


def k8s_files() -> list[Path]:
    return sorted(K8S.glob("*.yaml"))


@cache
def k8s_documents() -> list[dict]:
    return [doc for path in k8s_files() for doc in yaml.safe_load_all(path.read_text()) if doc]


def k8s_objects(kind: str) -> dict[str, dict]:
    return {
        d["metadata"].get("name") or d["metadata"]["generateName"]: d
        for d in k8s_documents()
        if d["kind"] == kind
    }


@cache
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def interpolate(value: str) -> str:
    """Compose's `${NAME}`, `${NAME:-default}` and `${NAME:?error}` with nothing set in the
    environment: the defaults, and a placeholder for what must be given."""
    innermost = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)(?:(:-|:\?|-|\?)([^${}]*))?\}")
    while True:
        replaced = innermost.sub(
            lambda m: m.group(3) if m.group(2) in (":-", "-") else f"given-{m.group(1).lower()}",
            value,
        )
        if replaced == value:
            return value
        value = replaced


def tenantry_services() -> dict[str, dict]:
    """The compose services that run the Tenantry image."""
    return {
        name: service
        for name, service in compose()["services"].items()
        if isinstance(service.get("build"), dict)
        and service["build"].get("dockerfile") == "platform/Dockerfile"
    }


def compose_environment(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.partition("=")[::2] for item in env)
    return {key: interpolate(str(value)) for key, value in env.items()}


def k8s_containers() -> list[tuple[str, dict, dict]]:
    """(owner name, pod spec, container) for every container of the Tenantry image."""
    found = []
    for kind in ("Deployment", "Job"):
        for name, obj in k8s_objects(kind).items():
            pod = obj["spec"]["template"]["spec"]
            for container in pod["containers"]:
                image = container["image"].rsplit("/", 1)[-1].split(":", 1)[0]
                if image == TENANTRY_IMAGE:
                    found.append((name, pod, container))
    return found


def k8s_environment(container: dict) -> dict[str, str]:
    """What a container's environment holds: the ConfigMaps and Secrets it takes whole, then
    its own `env` entries."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env.update(k8s_objects("ConfigMap")[source["configMapRef"]["name"]]["data"])
        else:
            secret = k8s_objects("Secret")[source["secretRef"]["name"]]
            env.update(secret.get("stringData") or secret.get("data") or {})
    env.update({item["name"]: item.get("value", "") for item in container.get("env", [])})
    return env


@cache
def dockerfile_instructions(path: Path = DOCKERFILE) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    lines, current = [], ""
    for raw in path.read_text().splitlines():
        stripped = raw.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        current += " " + stripped.removesuffix("\\")
        if not stripped.endswith("\\"):
            lines.append(current.strip())
            current = ""
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def commands() -> list[tuple[str, list[str]]]:
    """(where, argv) of every command the files start, `sh -c` chains split into theirs."""
    found = []
    for name, service in tenantry_services().items():
        if "command" in service:
            found.append((f"compose {name}", service["command"]))
    for name, _pod, container in k8s_containers():
        found.append((f"k8s {name}", container["command"] + container.get("args", [])))
    cmd = [args for instruction, args in dockerfile_instructions() if instruction == "CMD"]
    found.append(("Dockerfile CMD", yaml.safe_load(cmd[-1])))
    split = []
    for where, argv in found:
        if argv[:2] == ["sh", "-c"]:
            for part in argv[2].split("&&"):
                split.append((where, shlex.split(part)))
        else:
            split.append((where, argv))
    return split


# --- checks of one command -------------------------------------------------------------------


def check_gunicorn(args: list[str]) -> int:
    """Options gunicorn's own parser takes, a config file and WSGI callable that exist; the
    port it binds."""
    from gunicorn.config import Config

    parsed = Config().parser().parse_args(args)
    assert (ROOT / parsed.config).is_file(), parsed.config
    module, _, attribute = parsed.args[0].partition(":")
    source = (ROOT / (module.replace(".", "/") + ".py")).read_text()
    assert re.search(rf"^{attribute}\s*=", source, re.MULTILINE), parsed.args[0]
    (bind,) = parsed.bind
    return int(bind.rsplit(":", 1)[1])


def check_celery(args: list[str]) -> None:
    """`-A` names the Celery app, the subcommand exists and takes every option given."""
    from celery import Celery
    from celery.app.utils import find_app
    from celery.bin.celery import celery as celery_cli

    group_options = {opt for p in celery_cli.params for opt in p.opts + p.secondary_opts}
    app_at = args.index("-A") if "-A" in args else args.index("--app")
    assert isinstance(find_app(args[app_at + 1]), Celery)
    rest = args[:app_at] + args[app_at + 2 :]
    subcommand = next(a for a in rest if not a.startswith("-"))
    assert subcommand in celery_cli.commands, subcommand
    params = celery_cli.commands[subcommand].params
    options = {opt for p in params for opt in p.opts + p.secondary_opts}
    for token in rest:
        if token.startswith("-"):
            assert token in options | group_options, f"celery {subcommand} has no {token}"


def check_manage(args: list[str]) -> None:
    """A management command that exists, and options its own parser accepts."""
    from django.core.management import get_commands, load_command_class

    name, options = args[0], args[1:]
    assert name in get_commands(), f"manage.py has no command {name}"
    parser = load_command_class(get_commands()[name], name).create_parser("manage.py", name)
    parser.parse_args(options)


def check_python_code(code: str) -> None:
    """`python -c` code compiles, what it imports exists, and so do the module attributes it
    uses (`vector_check.check_dsn`)."""
    tree = ast.parse(code)
    names: dict[str, object] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            module = importlib.import_module(node.module)
            for alias in node.names:
                if not hasattr(module, alias.name):
                    importlib.import_module(f"{node.module}.{alias.name}")
                names[alias.asname or alias.name] = getattr(module, alias.name)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                names[alias.asname or alias.name] = importlib.import_module(alias.name)
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and isinstance(names.get(node.value.id), ModuleType)
        ):
            assert hasattr(names[node.value.id], node.attr), ast.unparse(node)


def check_command(argv: list[str]) -> int | None:
    program, args = argv[0], argv[1:]
    if program == "gunicorn":
        return check_gunicorn(args)
    if program == "celery":
        check_celery(args)
    elif program == "python" and args[0] == "manage.py":
        assert (ROOT / "manage.py").is_file()
        check_manage(args[1:])
    elif program == "python" and args[0] == "-c":
        check_python_code(args[1])
    else:
        pytest.fail(f"no check for {argv}")
    return None


# --- the tests -------------------------------------------------------------------------------


def test_every_yaml_file_parses():
    paths = [COMPOSE, *k8s_files()]
    assert len(paths) >= 6
    for path in paths:
        documents = [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
        assert documents, f"{path} holds nothing"
        for doc in documents:
            assert isinstance(doc, dict), path
    kinds = {doc["kind"] for doc in k8s_documents()}
    assert {"Deployment", "Service", "ConfigMap", "Secret", "ScaledObject", "Job"} <= kinds


def test_compose_runs_the_platform_and_its_servers():
    services = compose()["services"]
    workers = {"worker-ingest", "worker-evaluation", "worker-maintenance"}
    assert {"postgres", "redis", "pgbouncer", "web", "beat", *workers} <= set(services)
    assert {"web", "beat", *workers} <= set(tenantry_services())
    assert "pgvector" in services["postgres"]["image"]
    initdb = {}
    for volume in services["postgres"]["volumes"]:
        source, _, target = volume.partition(":")
        if target.startswith("/docker-entrypoint-initdb.d/"):
            initdb[target.split(":")[0]] = (COMPOSE.parent / source).resolve()
    assert ROOT / "platform" / "postgres" / "roles.sql" in initdb.values()
    for source in initdb.values():
        assert source.is_file(), source
    # roles.sql creates the databases itself; the image's POSTGRES_DB would make it fail.
    created = re.findall(
        r"CREATE DATABASE (\w+)", (PLATFORM / "postgres" / "roles.sql").read_text()
    )
    assert compose_environment(services["postgres"]).get("POSTGRES_DB") not in created
    # Every file a build copies exists in its context.
    for service in services.values():
        build = service.get("build")
        if build is None:
            continue
        context = COMPOSE.parent / (build if isinstance(build, str) else build["context"])
        dockerfile = context / (
            build.get("dockerfile", "Dockerfile") if isinstance(build, dict) else "Dockerfile"
        )
        for instruction, args in dockerfile_instructions(dockerfile.resolve()):
            if instruction == "COPY" and not args.startswith("--from"):
                for source in shlex.split(args)[:-1]:
                    assert (context / source).exists(), f"{dockerfile}: COPY {source}"


def test_variables_set_are_variables_the_code_reads():
    known = code_variables()
    # The scan itself must find what the code reads, or this test would pass on nothing.
    assert {"DATABASE_URL", "REDIS_URL", "DJANGO_SECRET_KEY", "WEB_THREADS", "DATA_DIR"} <= known
    for name, service in tenantry_services().items():
        unknown = set(compose_environment(service)) - known
        assert not unknown, f"compose {name} sets {unknown}, which no code reads"
    containers = k8s_containers()
    assert {name for name, _, _ in containers} >= {
        "tenantry-web",
        "tenantry-worker-ingest",
        "tenantry-worker-evaluation",
        "tenantry-worker-maintenance",
        "tenantry-beat",
    }
    for name, _pod, container in containers:
        unknown = set(k8s_environment(container)) - known
        assert not unknown, f"k8s {name} sets {unknown}, which no code reads"
    runtime = dockerfile_instructions()[
        max(i for i, (ins, _) in enumerate(dockerfile_instructions()) if ins == "FROM") :
    ]
    for instruction, args in runtime:
        if instruction == "ENV":
            names = {token.split("=", 1)[0] for token in shlex.split(args)}
            assert not names - known - IMAGE_TOOL_VARIABLES, names - known


def test_every_command_exists_with_its_options():
    found = commands()
    programs = {argv[0] for _, argv in found}
    assert {"gunicorn", "celery", "python"} <= programs
    for where, argv in found:
        try:
            check_command(argv)
        except (SystemExit, Exception) as exc:
            pytest.fail(f"{where}: {shlex.join(argv)}: {exc!r}")


def test_web_deployment_probes_the_app_on_the_port_gunicorn_binds():
    from django.http.request import validate_host
    from django.urls import resolve

    web = k8s_objects("Deployment")["tenantry-web"]
    (container,) = web["spec"]["template"]["spec"]["containers"]
    bound = check_gunicorn(container["command"][1:])
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert bound in ports.values()
    allowed = k8s_environment(container)["ALLOWED_HOSTS"].split(",")
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        http = container[probe]["httpGet"]
        assert http["path"] == path
        assert resolve(path).url_name == path.strip("/")
        port = ports[http["port"]] if isinstance(http["port"], str) else http["port"]
        assert port == bound, f"{probe} asks port {port}, gunicorn binds {bound}"
        host = {h["name"].lower(): h["value"] for h in http.get("httpHeaders", [])}.get("host")
        assert host is not None, f"{probe} sends the pod IP as Host, which ALLOWED_HOSTS lacks"
        assert validate_host(host, allowed), f"{probe}: Host {host} not in {allowed}"
    service = k8s_objects("Service")["tenantry-web"]
    assert (
        service["spec"]["selector"].items() <= web["spec"]["template"]["metadata"]["labels"].items()
    )
    target = service["spec"]["ports"][0]["targetPort"]
    assert (ports[target] if isinstance(target, str) else target) == bound

    # The compose health check asks the same server, on the port it binds, with a Host it takes.
    web = compose()["services"]["web"]
    bound = check_gunicorn(web["command"][1:])
    url = urlsplit(re.search(r"https?://[^'\"]+", " ".join(web["healthcheck"]["test"])).group())
    assert url.port == bound
    assert resolve(url.path).url_name in {"healthz", "readyz"}
    assert validate_host(url.hostname, compose_environment(web)["ALLOWED_HOSTS"].split(","))


@cache
def celery_queues() -> tuple[frozenset[str], dict[str, str]]:
    """(the queues the settings declare, {task name: the queue Celery sends it to}) for every
    task the worker registers, every task a route or beat's schedule names, and a task of no
    route; each resolved by Celery's own router from the real settings."""
    from config.celery_app import app as current_app
    from observability.broker import queue_names

    current_app.loader.import_default_modules()  # the worker's task autodiscovery
    routes = settings.CELERY_TASK_ROUTES
    names = {name for name in current_app.tasks if not name.startswith("celery.")}
    names |= set(routes) | {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    names.add("no.route.names.this")
    # The router adds a queue a route names but the settings do not declare: declared first.
    declared = frozenset(queue_names())
    router = current_app.amqp.router
    return declared, {name: router.route({}, name)["queue"].name for name in sorted(names)}


def worker_queues(argv: list[str]) -> set[str]:
    """The queues a `celery worker` command consumes: -Q's, or without it every declared one
    (Celery's default)."""
    for flag in ("-Q", "--queues"):
        if flag in argv:
            return set(argv[argv.index(flag) + 1].split(","))
    return set(celery_queues()[0])


def test_workers_consume_the_queues_tasks_are_sent_to():
    declared, sent_to = celery_queues()
    default = settings.CELERY_TASK_DEFAULT_QUEUE
    # The settings split the work by workload, and the resolution above sees it.
    assert {"ingest", "evaluation", "maintenance", default} <= declared
    assert sent_to["rag.tasks.ingest_document"] == "ingest"
    assert sent_to["rag.tasks.evaluate_set"] == "evaluation"
    assert sent_to["no.route.names.this"] == default
    for entry in settings.CELERY_BEAT_SCHEDULE.values():
        assert sent_to[entry["task"]] == "maintenance", (
            f"periodic {entry['task']} has no route to maintenance (CELERY_TASK_ROUTES)"
        )
    undeclared = {task: queue for task, queue in sent_to.items() if queue not in declared}
    assert not undeclared, f"routed to queues CELERY_TASK_QUEUES lacks: {undeclared}"

    k8s_workers = {
        name: worker_queues(container["command"])
        for name, _pod, container in k8s_containers()
        if "worker" in container["command"]
    }
    compose_workers = {
        name: worker_queues(service["command"])
        for name, service in tenantry_services().items()
        if "worker" in service.get("command", [])
    }
    for where, workers in (("k8s", k8s_workers), ("compose", compose_workers)):
        consumed = set().union(*workers.values())
        assert consumed <= declared, f"{where} workers wait on {consumed - declared}, undeclared"
        waiting = {task: queue for task, queue in sent_to.items() if queue not in consumed}
        assert not waiting, f"{where}: no worker consumes the queue of {waiting}"
        assert declared <= consumed, f"{where}: no worker consumes {declared - consumed}"
        # A worker per workload: ingestion and evaluation never share one (nor does a worker
        # without -Q, which would consume every queue).
        for name, queues in workers.items():
            assert not {"ingest", "evaluation"} <= queues, f"{where} {name} consumes {queues}"

    deployments = k8s_objects("Deployment")
    scaled_queues = set()
    for scaled in k8s_objects("ScaledObject").values():
        target = scaled["spec"]["scaleTargetRef"]["name"]
        assert target in k8s_workers, f"KEDA scales {target}, which is no worker Deployment"
        assert "replicas" not in deployments[target]["spec"]
        for trigger in scaled["spec"]["triggers"]:
            assert trigger["type"] == "redis"
            queue = trigger["metadata"]["listName"]
            assert queue in declared, f"KEDA watches {queue}, which no setting declares"
            assert queue in k8s_workers[target], f"KEDA scales {target} on {queue}, not its own"
            scaled_queues.add(queue)
            int(trigger["metadata"]["listLength"])
    assert {"ingest", "evaluation"} <= scaled_queues

    beat = deployments["tenantry-beat"]["spec"]
    assert beat["replicas"] == 1 and beat["strategy"]["type"] == "Recreate"


def test_pgbouncer_is_set_up_as_docs_pgbouncer_md_says():
    ini = configparser.ConfigParser(interpolation=None, delimiters=("=",))
    ini.read(PGBOUNCER / "pgbouncer.ini")
    bouncer = ini["pgbouncer"]
    assert bouncer["pool_mode"] == "transaction"
    assert bouncer["auth_type"] == "scram-sha-256"
    assert bouncer["ignore_startup_parameters"] == ""
    assert "server_reset_query" not in bouncer
    assert {"tenantry", "*"} <= set(ini["databases"])
    for entry in ini["databases"].values():
        assert "user=" not in entry, "a user= makes PgBouncer log in as one shared role"
    assert ini["users"]["tenantry_owner"] == "pool_mode=session"
    assert bouncer["auth_file"] in (PGBOUNCER / "entrypoint.sh").read_text()

    env = compose_environment(compose()["services"]["web"])
    app, owner = urlsplit(env["DATABASE_URL"]), urlsplit(env["OWNER_DATABASE_URL"])
    assert (app.hostname, app.port) == ("pgbouncer", int(bouncer["listen_port"]))
    assert app.path.strip("/") in ini["databases"]
    assert (owner.hostname, owner.port) == ("postgres", 5432), "the owner must bypass PgBouncer"
    assert app.username == "tenantry_app" and owner.username == "tenantry_owner"
    roles = (PLATFORM / "postgres" / "roles.sql").read_text()
    for url in (app, owner):
        assert f"{url.username} " in roles and f"PASSWORD '{url.password}'" in roles


def test_image_installs_torch_first_and_a_portable_llama_cpp():
    runs = [args for instruction, args in dockerfile_instructions() if instruction == "RUN"]

    def index(pattern: str) -> int:
        matches = [i for i, args in enumerate(runs) if re.search(pattern, args)]
        assert len(matches) == 1, f"{pattern}: {len(matches)} RUN steps"
        return matches[0]

    makefile_torch = re.search(r"torch==[\d.]+", (ROOT / "Makefile").read_text()).group()
    torch = index(re.escape(makefile_torch))
    assert "--index-url https://download.pytorch.org/whl/cpu" in runs[torch]
    llama = index(r"llama-cpp-python")
    project = index(r"pip install /src$")
    assert torch < llama < project, "torch, then llama-cpp-python, then the rest (Makefile order)"
    cmake = re.search(r'CMAKE_ARGS="([^"]+)"', runs[llama]).group(1).split()
    assert {"-DGGML_NATIVE=OFF", "-DGGML_AVX2=ON", "-DGGML_FMA=ON", "-DGGML_F16C=ON"} <= set(cmake)
    assert not any("AVX512" in flag and flag.endswith("=ON") for flag in cmake)
    assert "--no-binary llama-cpp-python" in runs[llama]
    assert not any("-march=native" in args for _, args in dockerfile_instructions())
    # The version range is the one pyproject.toml pins, read the way the Makefile reads it.
    assert """grep -o '"llama-cpp-python[^"]*"' /src/pyproject.toml""" in runs[llama]


def test_dockerignore_keeps_what_the_image_needs_and_drops_machine_state():
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]

    def ignored(path: str) -> bool:
        return any(
            fnmatch.fnmatch(path, p) or path.startswith(p.rstrip("/") + "/") for p in patterns
        )

    for needed in (
        "pyproject.toml",
        "README.md",
        "manage.py",
        "config/settings.py",
        "platform/gunicorn.conf.py",
        "rag/tasks.py",
        "static",
        "templates",
    ):
        assert (ROOT / needed).exists() and not ignored(needed), needed
    for machine_state in (".venv", "var", ".git", "platform/.env"):
        assert ignored(machine_state), f"{machine_state} would be copied into the image"

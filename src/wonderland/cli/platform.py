"""Platform commands: up, apply, get, describe, delete, down (``logs``: :mod:`.logs`).

Each command parses its flags, calls the library (the daemon or the control API) and
renders the answer as kubectl does.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import TYPE_CHECKING, Any

from wonderland.cli.components import COMPONENT_KINDS

if TYPE_CHECKING:
    from wonderland.api.kinds import ResourceKind
    from wonderland.api.manifests import Manifest
    from wonderland.control.client import ControlClient
    from wonderland.settings import Settings

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    up = subparsers.add_parser(
        "up",
        help="run the platform in the foreground",
        description="Run the platform (control API, controllers, gateway) in the foreground.",
    )
    _file_flags(up, required=False)
    up.add_argument(
        "--prometheus",
        action="store_true",
        help="also run Prometheus (Debian's prometheus package) scraping the daemon and every "
        "Pod, on WONDERLAND_PROMETHEUS_PORT (9091); the same as WONDERLAND_PROMETHEUS=on",
    )
    up.set_defaults(handler=_up)

    apply = subparsers.add_parser("apply", help="create or update objects from manifests")
    _file_flags(apply, required=True)
    _namespace_flag(apply)
    apply.add_argument(
        "--dry-run",
        choices=["none", "server", "client"],
        default="none",
        help="validate only: client (here) or server (in the daemon); nothing is stored",
    )
    apply.set_defaults(handler=_apply)

    get = subparsers.add_parser("get", help="list objects or show one")
    get.add_argument(
        "kind",
        metavar="KIND",
        help="kind, plural or short name (ksvc, cm, ...); `cs` (componentstatuses): the platform's own servers",
    )
    get.add_argument("names", metavar="NAME", nargs="*")
    _namespace_flag(get)
    get.add_argument("-A", "--all-namespaces", action="store_true")
    get.add_argument("-o", "--output", choices=["wide", "yaml", "json", "name"], default=None)
    get.add_argument("-l", "--selector", default=None, help="label selector (app=web,tier!=db)")
    get.add_argument(
        "-w", "--watch", action="store_true", help="after listing, print changes as they happen"
    )
    get.set_defaults(handler=_get)

    describe = subparsers.add_parser("describe", help="show one object in detail")
    describe.add_argument("kind", metavar="KIND")
    describe.add_argument("name", metavar="NAME")
    _namespace_flag(describe)
    describe.set_defaults(handler=_describe)

    delete = subparsers.add_parser("delete", help="delete objects (and what they own)")
    delete.add_argument("kind", metavar="KIND", nargs="?")
    delete.add_argument("names", metavar="NAME", nargs="*")
    _file_flags(delete, required=False)
    _namespace_flag(delete)
    delete.add_argument("--ignore-not-found", action="store_true")
    delete.add_argument(
        "--cascade",
        choices=["background", "foreground", "orphan"],
        default="background",
        help="orphan keeps the objects it owns (default: delete them too)",
    )
    delete.set_defaults(handler=_delete)

    down = subparsers.add_parser("down", help="stop the daemon of this state directory")
    down.set_defaults(handler=_down)


def _file_flags(parser: argparse.ArgumentParser, required: bool) -> None:
    parser.add_argument(
        "-f",
        "--filename",
        action="append",
        default=[],
        required=required,
        metavar="PATH",
        help="a manifest file or directory (repeatable; - reads standard input)",
    )
    parser.add_argument(
        "-R", "--recursive", action="store_true", help="read directories recursively"
    )


def _namespace_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-n", "--namespace", default=None, help="namespace (default: default)")


def _settings() -> Settings:
    from wonderland.settings import Settings

    return Settings.from_env()


def _client() -> ControlClient:
    from wonderland.control.client import ControlClient

    return ControlClient.for_state_dir(_settings().state_dir)


def _ref(kind: ResourceKind) -> str:
    return f"{kind.singular}.{kind.group}" if kind.group else kind.singular


def _load(args: argparse.Namespace) -> list[Manifest]:
    from wonderland.api.manifests import check_all, load_paths
    from wonderland.platform import default_admission

    manifests = load_paths(args.filename, args.recursive)
    namespace = getattr(args, "namespace", None)
    if namespace:
        for manifest in manifests:
            meta = manifest.obj.get("metadata")
            if isinstance(meta, dict) and not meta.get("namespace"):
                meta["namespace"] = namespace
    check_all(manifests, default_admission(_settings()))
    return manifests


# -- up / down ------------------------------------------------------------------


def _up(args: argparse.Namespace) -> int:
    from wonderland import daemon
    from wonderland.settings import Settings

    manifests = _load(args) if args.filename else []
    settings = Settings.from_env(prometheus="on" if args.prometheus else None)
    return daemon.run(settings, manifests)


def _down(args: argparse.Namespace) -> int:
    import os
    import signal

    from wonderland.daemon import DaemonLock, daemon_info

    settings = _settings()
    state_dir = settings.state_dir
    lock = DaemonLock(state_dir)
    if not lock.held_by_someone():
        print(f"no wonderland daemon is running on {state_dir}")
        return 0
    try:
        _client().request("POST", "/wonderland/v1/shutdown", {})
    except Exception:
        info = daemon_info(state_dir) or {}
        pid = info.get("pid")
        if isinstance(pid, int):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 60
    while lock.held_by_someone():
        if time.monotonic() > deadline:
            from wonderland.errors import ConfigError

            raise ConfigError(f"the daemon on {state_dir} did not stop within 60 s; see its output")
        time.sleep(0.1)
    print("wonderland stopped")
    return 0


# -- apply / delete ---------------------------------------------------------------


def _apply(args: argparse.Namespace) -> int:
    from wonderland.api import registry
    from wonderland.api.manifests import ManifestError
    from wonderland.errors import InvalidError, WonderlandError

    manifests = _load(args)
    suffix = " (dry run)" if args.dry_run != "none" else ""
    if args.dry_run == "client":
        for m in manifests:
            kind = registry.for_object(m.obj["apiVersion"], m.obj["kind"])
            print(f"{_ref(kind)}/{m.obj['metadata'].get('name', '')} checked{suffix}")
        return 0
    body = {"items": [m.obj for m in manifests], "dryRun": args.dry_run == "server"}
    try:
        answer = _client().request("POST", "/wonderland/v1/apply", body)
    except WonderlandError as exc:
        field = getattr(exc, "field", None) or ""
        status = getattr(exc, "status", None) or {}
        causes = (status.get("details") or {}).get("causes") or []
        if not field and causes:
            field = str(causes[0].get("field") or "")
        if field.startswith("items["):
            index_text, _, rest = field[len("items[") :].partition("]")
            manifest = manifests[int(index_text)]
            rest = rest.lstrip(".")
            if isinstance(exc, InvalidError):
                raise ManifestError(
                    [f"{manifest.where(rest)}: {rest + ': ' if rest else ''}{exc.reason_text}"]
                ) from None
            raise ManifestError([f"{manifest.where()}: {manifest.display}: {exc}"]) from None
        raise
    for result in answer["results"]:
        obj = result["object"]
        kind = registry.for_object(obj["apiVersion"], obj["kind"])
        print(f"{_ref(kind)}/{obj['metadata']['name']} {result['action']}{suffix}")
    return 0


def _delete(args: argparse.Namespace) -> int:
    from wonderland.api import registry
    from wonderland.control.client import object_path
    from wonderland.errors import ConfigError, NotFoundError

    targets: list[tuple[ResourceKind, str | None, str]] = []
    if args.filename:
        if args.kind:
            raise ConfigError("give either -f PATH or KIND NAME, not both")
        for manifest in _load(args):
            kind = registry.for_object(manifest.obj["apiVersion"], manifest.obj["kind"])
            meta = manifest.obj.get("metadata") or {}
            targets.append((kind, meta.get("namespace") or args.namespace, meta.get("name", "")))
    else:
        if not args.kind or not args.names:
            raise ConfigError(
                "say what to delete: `wonderland delete KIND NAME...` or `wonderland delete -f PATH`"
            )
        kind_name, names = _split_kind(args.kind, args.names)
        kind = registry.lookup(kind_name)
        targets = [(kind, args.namespace, name) for name in names]
    client = _client()
    failed = False
    for kind, namespace, name in targets:
        try:
            client.request(
                "DELETE",
                object_path(kind, namespace or "default", name),
                {"propagationPolicy": args.cascade.capitalize()},
            )
        except NotFoundError as exc:
            if not args.ignore_not_found:
                print(f"Error from server (NotFound): {exc}", file=sys.stderr)
                failed = True
            continue
        print(f'{_ref(kind)} "{name}" deleted')
    return 1 if failed else 0


def _split_kind(kind: str, names: list[str]) -> tuple[str, list[str]]:
    if "/" in kind:
        kind, _, first = kind.partition("/")
        return kind, [first, *names]
    return kind, names


# -- get / describe --------------------------------------------------------------


def _kinds(spec: str) -> list[ResourceKind]:
    """``ksvc``, ``ksvc,cm`` or ``all`` (every kind in kubectl's "all" category)."""
    from wonderland.api import registry

    kinds: list[ResourceKind] = []
    for part in (p.strip() for p in spec.split(",") if p.strip()):
        found = (
            [k for k in registry.all_kinds() if "all" in k.categories]
            if part == "all"
            else [registry.lookup(part)]
        )
        kinds += [k for k in found if k not in kinds]
    return kinds


# Kinds whose wide columns `wonderland get` shows always (a TrainJob's progress and metrics).
_WIDE_BY_DEFAULT = frozenset({"trainjobs.trainer.kubeflow.org"})


def _get(args: argparse.Namespace) -> int:
    import orjson
    import yaml

    from wonderland.api import printing
    from wonderland.control.client import TABLE_ACCEPT, object_path
    from wonderland.errors import ConfigError

    kind_spec, names = _split_kind(args.kind, args.names)
    if kind_spec in COMPONENT_KINDS:
        return _get_components(names)
    if kind_spec in ("datasets", "dataset") and not names and args.output not in ("json", "yaml"):
        from wonderland.cli.data import get_datasets

        return get_datasets(None if args.all_namespaces else (args.namespace or "default"))
    kinds = _kinds(kind_spec)
    if names and len(kinds) > 1:
        raise ConfigError("give NAME with one kind only, e.g. `wonderland get ksvc hello`")
    namespace = None if args.all_namespaces else (args.namespace or "default")
    client = _client()
    params = {"labelSelector": args.selector} if args.selector else None
    if args.output in ("json", "yaml", "name"):
        items: list[dict[str, Any]] = []
        for kind in kinds:
            if names:
                items += [client.request("GET", object_path(kind, namespace, n)) for n in names]
            else:
                listing = client.request("GET", object_path(kind, namespace), params=params)
                items += listing["items"]
        if args.output == "name":
            for kind, item in ((_kind_of(i), i) for i in items):
                print(f"{_ref(kind)}/{item['metadata']['name']}")
            return 0
        result: Any = (
            items[0]
            if len(names) == 1
            else {"apiVersion": "v1", "kind": "List", "items": items, "metadata": {}}
        )
        if args.output == "json":
            print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
        else:
            print(yaml.safe_dump(result, sort_keys=False).rstrip())
        return 0
    if args.watch:
        if len(kinds) != 1 or names:
            raise ConfigError("watch one kind at a time: `wonderland get ksvc -w`")
        return _watch(client, kinds[0], namespace, params or {}, args.output == "wide")
    blocks: list[str] = []
    for kind in kinds:
        if names:
            table: dict[str, Any] | None = None
            for name in names:
                one = client.request(
                    "GET", object_path(kind, namespace or "default", name), accept=TABLE_ACCEPT
                )
                if table is None:
                    table = one
                else:
                    table["rows"].extend(one["rows"])
            assert table is not None
        else:
            table = client.request(
                "GET", object_path(kind, namespace), accept=TABLE_ACCEPT, params=params
            )
        if not table["rows"]:
            continue
        if len(kinds) > 1:
            for row in table["rows"]:
                row["cells"][0] = f"{_ref(kind)}/{row['cells'][0]}"
        lines = printing.render(
            table,
            wide=args.output == "wide" or kind.resource in _WIDE_BY_DEFAULT,
            with_namespace=namespace is None and kind.namespaced,
        )
        blocks.append("\n".join(lines))
    if not blocks:
        namespaced = any(k.namespaced for k in kinds)
        where = "" if namespace is None or not namespaced else f" in {namespace} namespace"
        print(f"No resources found{where}.", file=sys.stderr)
        return 0
    print("\n\n".join(blocks))
    return 0


def _get_components(names: list[str]) -> int:
    """The platform's components (not API objects): from the daemon's daemon.json."""
    from wonderland.cli.components import components, render_table

    items = components(_settings().state_dir)
    if names:
        missing = [n for n in names if n not in {c.name for c in items}]
        if missing:
            from wonderland.errors import NotFoundError

            raise NotFoundError(f'component "{missing[0]}" not found')
        items = [c for c in items if c.name in names]
    print(render_table(items))
    return 0


def _watch(
    client: ControlClient,
    kind: ResourceKind,
    namespace: str | None,
    params: dict[str, str],
    wide: bool,
) -> int:
    """Print the table, then one row per change, until Ctrl-C (as ``kubectl get -w``)."""
    from wonderland.api import printing
    from wonderland.control.client import TABLE_ACCEPT, object_path

    path = object_path(kind, namespace)
    table = client.request("GET", path, accept=TABLE_ACCEPT, params=params or None)
    with_namespace = namespace is None and kind.namespaced
    defs = table["columnDefinitions"]

    def show(rows: list[dict[str, Any]], header: bool) -> None:
        lines = printing.render(
            {"columnDefinitions": defs, "rows": rows}, wide=wide, with_namespace=with_namespace
        )
        for line in lines if header else lines[1:]:
            print(line, flush=True)

    show(table["rows"], header=True)
    version = table.get("metadata", {}).get("resourceVersion", "")
    try:
        for event in client.stream(
            path, {**params, "resourceVersion": version}, accept=TABLE_ACCEPT
        ):
            obj = event.get("object") or {}
            if event.get("type") == "ERROR":
                print(f"watch ended: {obj.get('message', '')}", file=sys.stderr)
                return 1
            show(obj.get("rows") or [], header=False)
    except KeyboardInterrupt:
        return 0
    return 0


def _kind_of(obj: dict[str, Any]) -> ResourceKind:
    from wonderland.api import registry

    return registry.for_object(str(obj.get("apiVersion")), str(obj.get("kind")))


def _title(key: str) -> str:
    words = []
    current = ""
    for ch in key:
        if ch.isupper() and current and not current[-1].isupper():
            words.append(current)
            current = ch
        else:
            current += ch
    words.append(current)
    return " ".join(w[:1].upper() + w[1:] for w in words if w)


def _describe_value(value: Any, indent: int, out: list[str]) -> None:
    pad = "  " * indent
    if isinstance(value, dict):
        width = max((len(_title(str(k))) for k in value), default=0) + 2
        for key, item in value.items():
            label = f"{_title(str(key))}:"
            if isinstance(item, (dict, list)) and item:
                out.append(f"{pad}{label}")
                _describe_value(item, indent + 1, out)
            else:
                out.append(f"{pad}{label.ljust(width)}{_scalar(item)}")
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, dict):
                first = True
                inner: list[str] = []
                _describe_value(item, indent + 1, inner)
                for line in inner:
                    out.append((pad + "  " + line.lstrip(" ")) if first else line)
                    first = False
                if not inner:
                    out.append(f"{pad}  {{}}")
            else:
                out.append(f"{pad}  {_scalar(item)}")


def _scalar(value: Any) -> str:
    if value is None or value == {} or value == []:
        return "<none>"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _describe(args: argparse.Namespace) -> int:
    from wonderland.api import registry
    from wonderland.control.client import object_path

    kind_name, names = _split_kind(args.kind, [args.name])
    if kind_name in COMPONENT_KINDS:
        from wonderland.cli.components import components, describe_component

        print(describe_component(components(_settings().state_dir), names[0]))
        return 0
    kind = registry.lookup(kind_name)
    client = _client()
    obj = client.request("GET", object_path(kind, args.namespace or "default", names[0]))
    meta = obj.get("metadata", {})

    def mapping(values: dict[str, str] | None) -> list[str]:
        if not values:
            return ["<none>"]
        return [f"{k}={v}" for k, v in sorted(values.items())]

    out: list[str] = [f"Name:         {meta.get('name')}"]
    if kind.namespaced:
        out.append(f"Namespace:    {meta.get('namespace')}")
    labels = mapping(meta.get("labels"))
    out.append(f"Labels:       {labels[0]}")
    out += [f"              {line}" for line in labels[1:]]
    annotations = mapping(meta.get("annotations"))
    out.append(f"Annotations:  {annotations[0]}")
    out += [f"              {line}" for line in annotations[1:]]
    out.append(f"API Version:  {obj.get('apiVersion')}")
    out.append(f"Kind:         {obj.get('kind')}")
    shown_meta = {
        k: v for k, v in meta.items() if k not in ("name", "namespace", "labels", "annotations")
    }
    out.append("Metadata:")
    _describe_value(shown_meta, 1, out)
    for key, value in obj.items():
        if key in ("apiVersion", "kind", "metadata"):
            continue
        if isinstance(value, (dict, list)) and value:
            out.append(f"{_title(key)}:")
            _describe_value(value, 1, out)
        else:
            out.append(f"{_title(key)}:  {_scalar(value)}")
    out += _events_section(client, meta)
    print("\n".join(out))
    return 0


def _events_section(client: ControlClient, meta: dict[str, Any]) -> list[str]:
    """kubectl's Events block: Type, Reason, Age, From, Message."""
    from wonderland.api import printing
    from wonderland.errors import WonderlandError

    namespace = meta.get("namespace") or "default"
    try:
        listing = client.request(
            "GET",
            f"/api/v1/namespaces/{namespace}/events",
            params={"fieldSelector": f"involvedObject.uid={meta.get('uid', '')}"},
        )
    except WonderlandError:
        return ["Events:       <none>"]
    events = sorted(listing.get("items") or [], key=lambda e: e.get("lastTimestamp") or "")
    if not events:
        return ["Events:       <none>"]
    rows = [
        ["Type", "Reason", "Age", "From", "Message"],
        ["----", "------", "----", "----", "-------"],
    ]
    for event in events:
        age = printing.age(event.get("lastTimestamp"))
        count = int(event.get("count") or 1)
        if count > 1:
            age += f" (x{count} over {printing.age(event.get('firstTimestamp'))})"
        source = (event.get("source") or {}).get("component") or ""
        rows.append(
            [
                str(event.get("type") or ""),
                str(event.get("reason") or ""),
                age,
                source,
                str(event.get("message") or ""),
            ]
        )
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["Events:"]
    for row in rows:
        cells = [c.ljust(w) for c, w in zip(row[:4], widths, strict=True)]
        lines.append("  " + "  ".join([*cells, row[4]]).rstrip())
    return lines

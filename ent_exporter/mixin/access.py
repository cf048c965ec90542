"""Per-establishment Grafana access, generated from the structures list.

    python -m ent_exporter.mixin.access --config config.yml --out grafana/establishments      # structures from the source
    python -m ent_exporter.mixin.access --structures structures.csv --out grafana/establishments  # or a CSV: structure_id,name

writes, for every structure:

- ``dashboards/<id>/establishment.json``: the Establishment dashboard with its ``structure``
  variable fixed to that structure (a hidden constant), its own uid and title;
- ``provisioning/ent-establishments.yml``: one Grafana file provider per structure, each loading
  its directory into its own folder (uid ``ent-<id>``, titled with the establishment's name);
- ``access.json``: for every folder, the team that may view it (``ENT <id>``) — what
  ``python -m ent_exporter.mixin.access apply`` creates through Grafana's HTTP API (teams and folder
  permissions are not part of Grafana's file provisioning): teams, then each folder's permissions
  replaced by "that team: View" (admins keep theirs; the org's Viewer and Editor roles lose it).

A fixed variable is a convenience, not a wall: anyone who may view a dashboard can send their
own queries to its datasource through Grafana's API, and Grafana OSS has no per-team datasource
permissions. Where a head of establishment must see only their own figures, give them their
monthly reports (``ent-exporter report``: one directory per structure), or a datasource of
their own behind a label-enforcing proxy (docs/dashboards.md, "Per-establishment access").
"""

from __future__ import annotations

import argparse
import copy
import csv
import json
import re
import sys
from pathlib import Path

import yaml

DASHBOARDS = Path(__file__).resolve().parents[2] / "grafana" / "dashboards"  # generated, in the checkout
# The Establishment dashboard in the default language (French: heads of establishment read it).
SOURCE_DASHBOARD = DASHBOARDS / "fr" / "establishment.json"
# Where docker-compose.yml (or your Grafana) mounts the generated dashboards/ directory.
CONTAINER_PATH = "/etc/grafana/dashboards/ent-establishments"
UID_LENGTH = 40  # Grafana's limit for dashboard and folder uids
VIEW = 1  # Grafana's folder permission levels: 1 View, 2 Edit, 4 Admin


def safe(structure_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", structure_id)


def uid(prefix: str, structure_id: str) -> str:
    value = f"{prefix}-{safe(structure_id)}"
    if len(value) > UID_LENGTH:
        raise SystemExit(f"structure id {structure_id!r} makes a uid longer than {UID_LENGTH} characters: {value}")
    return value


def team_name(structure_id: str) -> str:
    return f"ENT {structure_id}"


def establishment_dashboard(source: dict, structure_id: str, name: str) -> dict:
    """The Establishment dashboard for one structure: its variable fixed and hidden, its own uid."""
    dashboard = copy.deepcopy(source)
    dashboard["uid"] = uid("ent-est", structure_id)
    dashboard["title"] = f"{name} ({structure_id})" if name and name != structure_id else f"ENT {structure_id}"
    dashboard["tags"] = ["ent-establishment", structure_id]
    dashboard["links"] = []  # the platform's dashboards are in a folder this team does not see
    dashboard.pop("id", None)
    for variable in dashboard["templating"]["list"]:
        if variable["name"] == "structure":
            variable.clear()
            variable.update(
                {
                    "name": "structure",
                    "type": "constant",
                    "label": "Structure",
                    "hide": 2,
                    "query": structure_id,
                    "skipUrlSync": True,
                    "current": {"selected": True, "text": structure_id, "value": structure_id},
                    "options": [{"selected": True, "text": structure_id, "value": structure_id}],
                    "description": f"Fixed: {name} ({structure_id}).",
                }
            )
    _keep_own_links(dashboard)
    return dashboard


def _opens_elsewhere(link: dict, own_uid: str) -> bool:
    """Whether a link opens another Grafana dashboard (a folder the establishment's team cannot view)."""
    url = link.get("url", "")
    return url.startswith("/d/") and url[3:].split("?")[0].split("/")[0] != own_uid


def _keep_own_links(dashboard: dict) -> None:
    """Drops the panel links and data links to the platform's dashboards (drill-downs to the Applications
    dashboard...): the team of an establishment views its own folder only, so they would open on an error."""
    stack = list(dashboard.get("panels", []))
    while stack:
        panel = stack.pop()
        stack.extend(panel.get("panels", []))
        if "links" in panel:
            panel["links"] = [link for link in panel["links"] if not _opens_elsewhere(link, dashboard["uid"])]
        config = panel.get("fieldConfig", {})
        defaults = config.get("defaults", {})
        if "links" in defaults:
            defaults["links"] = [link for link in defaults["links"] if not _opens_elsewhere(link, dashboard["uid"])]
        for override in config.get("overrides", []):
            for prop in override.get("properties", []):
                if prop.get("id") == "links":
                    prop["value"] = [link for link in prop["value"] if not _opens_elsewhere(link, dashboard["uid"])]


def generate(structures: list[tuple[str, str]], out: Path, container_path: str = CONTAINER_PATH) -> list[Path]:
    """Writes the dashboards, the provisioning file and the access plan; returns the files written."""
    source = json.loads(SOURCE_DASHBOARD.read_text())
    written: list[Path] = []
    providers, plan = [], []
    seen: dict[str, str] = {}
    for structure_id, name in sorted(structures):
        if safe(structure_id) in seen:
            raise SystemExit(
                f"structures {seen[safe(structure_id)]!r} and {structure_id!r} map to the same directory and uids"
            )
        seen[safe(structure_id)] = structure_id
        directory = out / "dashboards" / safe(structure_id)
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / "establishment.json"
        path.write_text(
            json.dumps(
                establishment_dashboard(source, structure_id, name), indent=2, sort_keys=True, ensure_ascii=False
            )
            + "\n"
        )
        written.append(path)
        folder = uid("ent", structure_id)
        title = f"{name} ({structure_id})" if name and name != structure_id else structure_id
        providers.append(
            {
                "name": f"ENT {structure_id}",
                "folder": title,
                "folderUid": folder,
                "type": "file",
                "disableDeletion": True,
                "allowUiUpdates": False,
                "updateIntervalSeconds": 300,
                "options": {"path": f"{container_path}/{safe(structure_id)}", "foldersFromFilesStructure": False},
            }
        )
        plan.append(
            {
                "structure": structure_id,
                "name": name,
                "folderUid": folder,
                "folder": title,
                "team": team_name(structure_id),
                "permission": VIEW,
            }
        )
    provisioning = out / "provisioning" / "ent-establishments.yml"
    provisioning.parent.mkdir(parents=True, exist_ok=True)
    provisioning.write_text(
        "# Generated by `python -m ent_exporter.mixin.access`: one folder per establishment, its dashboard's structure fixed.\n"
        f"# Mount {out / 'dashboards'} at {container_path} and this file in /etc/grafana/provisioning/dashboards/.\n"
        + yaml.safe_dump({"apiVersion": 1, "providers": providers}, sort_keys=False, allow_unicode=True)
    )
    written.append(provisioning)
    access = out / "access.json"
    access.write_text(json.dumps({"folders": plan}, indent=2, ensure_ascii=False) + "\n")
    written.append(access)
    return written


# -- applying the plan through Grafana's HTTP API -------------------------------------------------


def apply(plan: dict, url: str, token: str, client=None) -> list[str]:
    """Creates each team (if missing) and replaces each folder's permissions by "that team: View".
    Returns what was done, one line per folder."""
    import httpx

    http = client or httpx.Client(base_url=url.rstrip("/"), headers={"Authorization": f"Bearer {token}"}, timeout=30)
    done = []
    for entry in plan["folders"]:
        found = http.get("/api/teams/search", params={"name": entry["team"]})
        found.raise_for_status()
        teams = [t for t in found.json().get("teams", []) if t["name"] == entry["team"]]
        if teams:
            team_id = teams[0]["id"]
        else:
            created = http.post("/api/teams", json={"name": entry["team"]})
            created.raise_for_status()
            team_id = created.json()["teamId"]
        permissions = http.post(
            f"/api/folders/{entry['folderUid']}/permissions",
            json={"items": [{"teamId": team_id, "permission": entry["permission"]}]},
        )
        permissions.raise_for_status()
        done.append(f"{entry['folderUid']}: team {entry['team']} (id {team_id}) may view")
    return done


def structures_from_csv(path: Path) -> list[tuple[str, str]]:
    with path.open(newline="") as handle:
        rows = list(csv.reader(handle))
    if rows and rows[0] and rows[0][0].strip().lower() == "structure_id":
        rows = rows[1:]
    return [(row[0].strip(), row[1].strip() if len(row) > 1 else row[0].strip()) for row in rows if row and row[0]]


def structures_from_source(config_path: Path) -> list[tuple[str, str]]:
    from ent_exporter.app import make_source
    from ent_exporter.config import load_config
    from ent_exporter.reports.figures import structures

    config = load_config(config_path)
    source = make_source(config)
    try:
        source.wait_ready()
        found = structures(source)
    finally:
        source.close()
    return [(s.structure_id, s.name) for s in found.values() if s.structure_id != "unknown"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ent_exporter.mixin.access", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command")
    parser.add_argument("--config", type=Path, help="read the structures from the source of this configuration")
    parser.add_argument("--structures", type=Path, help="or from a CSV file: structure_id,name")
    parser.add_argument("--out", type=Path, default=Path("grafana/establishments"))
    parser.add_argument(
        "--container-path", default=CONTAINER_PATH, help=f"where Grafana sees OUT/dashboards (default {CONTAINER_PATH})"
    )
    applying = sub.add_parser("apply", help="create the teams and folder permissions of OUT/access.json")
    applying.add_argument("--url", required=True, help="Grafana's address, e.g. http://127.0.0.1:3000")
    applying.add_argument(
        "--token-env",
        default="GRAFANA_TOKEN",
        help="environment variable holding a service account token (default GRAFANA_TOKEN)",
    )
    args = parser.parse_args(argv)
    if args.command == "apply":
        import os

        token = os.environ.get(args.token_env)
        if not token:
            print(
                f"python -m ent_exporter.mixin.access apply: --token-env: {args.token_env} is not set", file=sys.stderr
            )
            return 2
        for line in apply(json.loads((args.out / "access.json").read_text()), args.url, token):
            print(line)
        return 0
    if bool(args.config) == bool(args.structures):
        print(
            "python -m ent_exporter.mixin.access: give --config FILE or --structures FILE.csv (one of them)",
            file=sys.stderr,
        )
        return 2
    structures = structures_from_source(args.config) if args.config else structures_from_csv(args.structures)
    if not structures:
        print("python -m ent_exporter.mixin.access: no structure found", file=sys.stderr)
        return 2
    written = generate(structures, args.out, args.container_path)
    print(f"{len(structures)} establishments: {len(written)} files in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Per-establishment Grafana access generated from the structures list: valid YAML and JSON naming
every structure, one folder and one fixed dashboard per establishment, and the teams and folder
permissions applied through Grafana's HTTP API (a stand-in: Grafana is not a Debian package)."""

from __future__ import annotations

import json

import httpx
import psycopg
import yaml

from ent_exporter.mixin.access import SOURCE_DASHBOARD, apply, generate, main, structures_from_csv
from tests.support import write_config

STRUCTURES = [
    ("0750001A", "Collège Jean Moulin"),
    ("0750002B", "Lycée Victor Hugo"),
    ("0750003C", "École du Centre"),
    ("0759999Z", "0759999Z"),
]


def check(out, structures):
    provisioning = yaml.safe_load((out / "provisioning" / "ent-establishments.yml").read_text())
    providers = {p["folderUid"]: p for p in provisioning["providers"]}
    plan = json.loads((out / "access.json").read_text())["folders"]
    source = json.loads(SOURCE_DASHBOARD.read_text())
    assert len(providers) == len(plan) == len(structures)
    uids = set()
    for structure_id, name in structures:
        provider = providers[f"ent-{structure_id}"]
        assert structure_id in provider["folder"] and name in provider["folder"]
        assert provider["type"] == "file" and provider["options"]["path"].endswith("/" + structure_id)
        (entry,) = [e for e in plan if e["structure"] == structure_id]
        assert entry == {
            "structure": structure_id,
            "name": name,
            "folderUid": f"ent-{structure_id}",
            "folder": provider["folder"],
            "team": f"ENT {structure_id}",
            "permission": 1,
        }
        dashboard = json.loads((out / "dashboards" / structure_id / "establishment.json").read_text())
        (variable,) = [v for v in dashboard["templating"]["list"] if v["name"] == "structure"]
        assert variable["type"] == "constant" and variable["query"] == structure_id and variable["hide"] == 2
        assert variable["current"]["value"] == structure_id
        assert len(dashboard["uid"]) <= 40 and dashboard["uid"] not in uids
        uids.add(dashboard["uid"])
        assert name in dashboard["title"] or structure_id in dashboard["title"]
        # The panels are the Establishment dashboard's, selecting by $structure: the fixed value applies to all.
        assert [p.get("targets") for p in dashboard["panels"]] == [p.get("targets") for p in source["panels"]]
        assert any("$structure" in t["expr"] for p in dashboard["panels"] for t in p.get("targets", []))
        # Only its own structure is named.
        text = json.dumps(dashboard, ensure_ascii=False)
        for other_id, other_name in structures:
            if other_id != structure_id:
                assert other_id not in text and (other_name == other_id or other_name not in text)


def test_generated_from_a_csv_list(tmp_path):
    listing = tmp_path / "structures.csv"
    listing.write_text("structure_id,name\n" + "".join(f"{s},{n}\n" for s, n in STRUCTURES))
    assert structures_from_csv(listing) == STRUCTURES
    assert main(["--structures", str(listing), "--out", str(tmp_path / "out")]) == 0
    check(tmp_path / "out", STRUCTURES)


def test_generated_from_the_source_of_a_configuration(source_dsn, tmp_path):
    with psycopg.connect(source_dsn) as conn:
        conn.cursor().executemany("INSERT INTO ent.structures VALUES (%s, %s, 'college')", STRUCTURES[:3])
        conn.execute(
            "INSERT INTO ent.accounts (user_id, structure_id, profile, created_at) VALUES"
            " ('u1', '0759999Z', 'Student', now()), ('u2', '', 'Student', now())"
        )
    config = write_config(tmp_path / "config.yml", source_dsn)
    assert main(["--config", str(config), "--out", str(tmp_path / "out")]) == 0
    check(tmp_path / "out", STRUCTURES)  # the structure known from accounts only too; "unknown" is no establishment


def test_apply_creates_teams_and_replaces_folder_permissions(tmp_path):
    generate(STRUCTURES[:2], tmp_path)
    plan = json.loads((tmp_path / "access.json").read_text())
    teams: dict[str, int] = {"ENT 0750001A": 7}  # one team exists already
    calls = []

    def grafana(request: httpx.Request) -> httpx.Response:
        calls.append((request.method, request.url.path, request.content and json.loads(request.content)))
        assert request.headers["Authorization"] == "Bearer secret"
        if request.url.path == "/api/teams/search":
            name = request.url.params["name"]
            return httpx.Response(200, json={"teams": [{"id": teams[name], "name": name}] if name in teams else []})
        if request.url.path == "/api/teams" and request.method == "POST":
            teams[json.loads(request.content)["name"]] = 8
            return httpx.Response(200, json={"teamId": 8, "message": "Team created"})
        if request.url.path.startswith("/api/folders/") and request.url.path.endswith("/permissions"):
            return httpx.Response(200, json={"message": "Folder permissions updated"})
        return httpx.Response(404)

    client = httpx.Client(
        base_url="http://127.0.0.1:3000",
        transport=httpx.MockTransport(grafana),
        headers={"Authorization": "Bearer secret"},
    )
    done = apply(plan, "http://127.0.0.1:3000", "secret", client)
    assert done == [
        "ent-0750001A: team ENT 0750001A (id 7) may view",
        "ent-0750002B: team ENT 0750002B (id 8) may view",
    ]
    assert ("POST", "/api/teams", {"name": "ENT 0750002B"}) in calls
    assert ("POST", "/api/folders/ent-0750001A/permissions", {"items": [{"teamId": 7, "permission": 1}]}) in calls
    assert ("POST", "/api/folders/ent-0750002B/permissions", {"items": [{"teamId": 8, "permission": 1}]}) in calls


def test_one_line_errors(tmp_path, capsys, monkeypatch):
    assert main(["--out", str(tmp_path)]) == 2
    monkeypatch.delenv("GRAFANA_TOKEN", raising=False)
    assert main(["--out", str(tmp_path), "apply", "--url", "http://127.0.0.1:3000"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2 and "--token-env: GRAFANA_TOKEN is not set" in lines[1]

"""The static catalog: contents, wire format (OpenAPI spec and hcloud-python), lookups."""

from __future__ import annotations

import warnings
from decimal import Decimal
from typing import Any

import pytest

from scherbelberg.emulator.model import static_catalog
from scherbelberg.emulator.model.static_catalog import (
    DATACENTERS,
    LOCATIONS,
    SERVER_TYPES,
    SYSTEM_IMAGES,
    find_datacenter,
    find_location,
    find_server_type,
    find_system_image,
    network_zone_of,
    pricing,
)
from tests.spec import load_spec

EU = {"fsn1", "nbg1", "hel1"}
ALL = {"fsn1", "nbg1", "hel1", "ash", "hil", "sin"}
TB = 1024**4

# ---------------------------------------------------------------------------- contents


def test_locations_and_datacenters() -> None:
    table = {
        "fsn1": ("fsn1-dc14", "Falkenstein", "DE", "eu-central"),
        "nbg1": ("nbg1-dc3", "Nuremberg", "DE", "eu-central"),
        "hel1": ("hel1-dc2", "Helsinki", "FI", "eu-central"),
        "ash": ("ash-dc1", "Ashburn, VA", "US", "us-east"),
        "hil": ("hil-dc1", "Hillsboro, OR", "US", "us-west"),
        "sin": ("sin-dc1", "Singapore", "SG", "ap-southeast"),
    }
    assert [loc.name for loc in LOCATIONS] == list(table)
    for name, (dc_name, city, country, zone) in table.items():
        loc = find_location(name)
        assert loc is not None
        assert (loc.city, loc.country, loc.network_zone) == (city, country, zone)
        dc = find_datacenter(dc_name)
        assert dc is not None and dc.location == loc
        assert static_catalog.datacenter_for_location(name) == dc
        assert network_zone_of(name) == zone
        assert network_zone_of(loc.id) == zone
    assert static_catalog.NETWORK_ZONES["eu-central"] == ("fsn1", "nbg1", "hel1")
    assert len({loc.id for loc in LOCATIONS}) == len(LOCATIONS)
    assert len({dc.id for dc in DATACENTERS}) == len(DATACENTERS)
    assert find_datacenter(static_catalog.RECOMMENDED_DATACENTER_ID) is not None


SIZES = {
    "cx23": (2, 4, 40), "cx33": (4, 8, 80), "cx43": (8, 16, 160), "cx53": (16, 32, 320),
    "cx22": (2, 4, 40), "cx32": (4, 8, 80), "cx42": (8, 16, 160), "cx52": (16, 32, 320),
    "cpx12": (1, 2, 40), "cpx22": (2, 4, 80), "cpx32": (4, 8, 160), "cpx42": (8, 16, 320),
    "cpx52": (12, 24, 480), "cpx62": (16, 32, 640),
    "cpx11": (2, 2, 40), "cpx21": (3, 4, 80), "cpx31": (4, 8, 160), "cpx41": (8, 16, 240),
    "cpx51": (16, 32, 360),
    "cax11": (2, 4, 40), "cax21": (4, 8, 80), "cax31": (8, 16, 160), "cax41": (16, 32, 320),
    "ccx13": (2, 8, 80), "ccx23": (4, 16, 160), "ccx33": (8, 32, 240), "ccx43": (16, 64, 360),
    "ccx53": (32, 128, 600), "ccx63": (48, 192, 960),
}  # fmt: skip
DEPRECATED = {"cx22", "cx32", "cx42", "cx52", "cpx11", "cpx21", "cpx31", "cpx41", "cpx51"}


def test_server_type_sizes_and_kinds() -> None:
    assert {st.name for st in SERVER_TYPES} == set(SIZES)
    assert len({st.id for st in SERVER_TYPES}) == len(SERVER_TYPES)
    assert [st.id for st in SERVER_TYPES] == sorted(st.id for st in SERVER_TYPES)
    for st in SERVER_TYPES:
        assert (st.cores, st.memory, st.disk) == SIZES[st.name], st.name
        assert isinstance(st.memory, float)
        assert st.deprecated == (st.name in DEPRECATED), st.name
        assert st.architecture == ("arm" if st.name.startswith("cax") else "x86")
        assert st.cpu_type == ("dedicated" if st.name.startswith("ccx") else "shared")
        if st.name.startswith(("cx", "cax")):
            assert set(st.location_names) == EU, st.name
        else:
            assert set(st.location_names) == ALL, st.name


def test_server_type_json() -> None:
    st = find_server_type("cx23")
    assert st is not None
    data = st.to_json()
    assert data["name"] == "cx23" and data["memory"] == 4.0 and data["deprecated"] is False
    assert data["deprecation"] is None
    assert [loc["name"] for loc in data["locations"]] == ["fsn1", "nbg1", "hel1"]
    for loc in data["locations"]:
        assert set(loc) == {"id", "name", "deprecation", "available", "recommended"}
        assert loc["available"] is True and loc["recommended"] is True
        assert loc["id"] == find_location(loc["name"]).id  # type: ignore[union-attr]


def test_deprecated_server_type_json() -> None:
    st = find_server_type("cx22")
    assert st is not None
    data = st.to_json()
    assert data["deprecated"] is True
    assert set(data["deprecation"]) == {"announced", "unavailable_after"}
    assert data["deprecation"]["announced"] < data["deprecation"]["unavailable_after"]
    for loc in data["locations"]:
        assert loc["deprecation"] == data["deprecation"]
        # still orderable (clients in the wild create cx22), but no longer recommended
        assert loc["available"] is True and loc["recommended"] is False
    assert st.available_in("fsn1") and not st.available_in("ash")


def test_prices() -> None:
    cx23 = find_server_type("cx23")
    assert cx23 is not None
    fsn1 = cx23.to_json()["prices"][0]
    assert fsn1["location"] == "fsn1"
    assert fsn1["price_monthly"] == {"net": "3.4900", "gross": "4.1531"}
    assert fsn1["price_hourly"] == {"net": "0.0060000000", "gross": "0.0071400000"}
    assert fsn1["included_traffic"] == 20 * TB
    for st in SERVER_TYPES:
        data = st.to_json()
        assert [p["location"] for p in data["prices"]] == [loc["name"] for loc in data["locations"]]
        for price in data["prices"]:
            for kind, places in (
                ("price_hourly", 10),
                ("price_monthly", 4),
                ("price_per_tb_traffic", 4),
            ):
                net, gross = price[kind]["net"], price[kind]["gross"]
                assert len(net.split(".")[1]) == places and len(gross.split(".")[1]) == places
                assert Decimal(gross) == (Decimal(net) * Decimal("1.19")).quantize(
                    Decimal(1).scaleb(-places)
                )
            monthly = Decimal(price["price_monthly"]["net"])
            hourly = Decimal(price["price_hourly"]["net"])
            assert Decimal("500") < monthly / hourly < Decimal("700")
            expected_traffic = 20 * TB if price["location"] in EU else TB
            assert price["included_traffic"] == expected_traffic
    ccx13 = find_server_type("ccx13")
    assert ccx13 is not None
    eu, us, sg = (ccx13.price_in(name) for name in ("fsn1", "ash", "sin"))
    assert eu and us and sg
    assert eu.monthly_net < us.monthly_net < sg.monthly_net
    assert ccx13.price_in("nowhere") is None


def test_datacenter_server_types() -> None:
    fsn = find_datacenter("fsn1-dc14")
    ash = find_datacenter("ash-dc1")
    assert fsn is not None and ash is not None
    cax11 = find_server_type("cax11")
    cpx12 = find_server_type("cpx12")
    assert cax11 is not None and cpx12 is not None
    fsn_types, ash_types = fsn.to_json()["server_types"], ash.to_json()["server_types"]
    assert set(fsn_types) == {"supported", "available", "available_for_migration"}
    assert cax11.id in fsn_types["supported"] and cax11.id in fsn_types["available"]
    assert cax11.id not in ash_types["supported"] and cax11.id not in ash_types["available"]
    assert cpx12.id in ash_types["available"]
    assert fsn.to_json()["location"] == find_location("fsn1").to_json()  # type: ignore[union-attr]


def test_system_images() -> None:
    names = ["debian-12", "debian-13", "ubuntu-22.04", "ubuntu-24.04", "rocky-9", "alma-9"]
    assert {img.name for img in SYSTEM_IMAGES} == set(names)
    assert len({img.id for img in SYSTEM_IMAGES}) == len(SYSTEM_IMAGES)
    assert [img.id for img in SYSTEM_IMAGES] == sorted(img.id for img in SYSTEM_IMAGES)
    for name in names:
        twins = [img for img in SYSTEM_IMAGES if img.name == name]
        assert [img.architecture for img in twins] == ["x86", "arm"], name
        assert twins[0].id < twins[1].id
        assert find_system_image(name) == twins[0]
        assert find_system_image(name, "x86") == twins[0]
        assert find_system_image(name, "arm") == twins[1]
        assert find_system_image(twins[1].id) == twins[1]
        assert find_system_image(str(twins[1].id), "arm") == twins[1]
        assert find_system_image(twins[1].id, "x86") is None
    assert find_system_image(static_catalog.DEFAULT_IMAGE_NAME) is not None
    assert static_catalog.DEFAULT_IMAGE_NAME == "debian-12"
    assert max(img.id for img in SYSTEM_IMAGES) == static_catalog.MAX_SYSTEM_IMAGE_ID
    image = find_system_image("ubuntu-24.04", "arm")
    assert image is not None
    data = image.to_json()
    assert data["type"] == "system" and data["status"] == "available"
    assert data["os_flavor"] == "ubuntu" and data["os_version"] == "24.04"
    assert data["architecture"] == "arm" and data["rapid_deploy"] is True
    assert data["deprecated"] is None and data["image_size"] is None
    assert data["protection"] == {"delete": False} and data["labels"] == {}
    assert {find_system_image(n).os_flavor for n in ("rocky-9", "alma-9")} == {  # type: ignore[union-attr]
        "rocky",
        "alma",
    }


@pytest.mark.parametrize(
    ("finder", "good_name", "good_id"),
    [
        (find_location, "hel1", 3),
        (find_datacenter, "nbg1-dc3", 2),
        (find_server_type, "cpx22", 109),
    ],
)
def test_lookups(finder: Any, good_name: str, good_id: int) -> None:
    by_name = finder(good_name)
    assert by_name is not None and by_name.name == good_name and by_name.id == good_id
    assert finder(good_id) == by_name
    assert finder(str(good_id)) == by_name
    assert finder("nope") is None
    assert finder(999999) is None
    assert finder(None) is None
    assert finder(True) is None
    assert finder("") is None


def test_to_json_returns_fresh_objects() -> None:
    st = find_server_type("cx23")
    assert st is not None
    first = st.to_json()
    first["prices"][0]["price_monthly"]["net"] = "0"
    first["locations"].clear()
    assert st.to_json()["prices"][0]["price_monthly"]["net"] == "3.4900"
    assert st.to_json()["locations"]


def test_pricing() -> None:
    body = pricing()["pricing"]
    assert body["currency"] == "EUR" and body["vat_rate"] == "19.00"
    assert [st["name"] for st in body["server_types"]] == [st.name for st in SERVER_TYPES]
    cx23 = next(st for st in body["server_types"] if st["name"] == "cx23")
    assert set(cx23) == {"id", "name", "prices"}
    assert cx23["prices"] == find_server_type("cx23").prices_json()  # type: ignore[union-attr]
    assert {ip["type"] for ip in body["primary_ips"]} == {"ipv4", "ipv6"}
    assert [p["location"] for p in body["primary_ips"][0]["prices"]] == [
        loc.name for loc in LOCATIONS
    ]
    assert body["load_balancer_types"]


# ---------------------------------------------------------------------------- OpenAPI spec


def _to_json_schema(node: Any, schemas: dict[str, Any]) -> Any:
    """OpenAPI 3.0 schema -> JSON Schema: inline $refs, turn `nullable` into a null branch."""
    if isinstance(node, list):
        return [_to_json_schema(item, schemas) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        return _to_json_schema(schemas[node["$ref"].rsplit("/", 1)[-1]], schemas)
    converted = {
        key: _to_json_schema(value, schemas)
        for key, value in node.items()
        if key not in ("nullable", "format", "example", "examples", "deprecated")
    }
    if node.get("nullable"):
        return {"anyOf": [{"type": "null"}, converted]}
    return converted


@pytest.fixture(scope="module")
def spec_schemas() -> dict[str, Any]:
    schemas: dict[str, Any] = load_spec()["components"]["schemas"]
    return schemas


def _validate(schemas: dict[str, Any], name: str, instance: Any) -> None:
    import jsonschema_rs

    schema = _to_json_schema(schemas[name], schemas)
    errors = [str(e) for e in jsonschema_rs.Draft202012Validator(schema).iter_errors(instance)]
    assert not errors, errors[:5]


META = {
    "pagination": {
        "page": 1,
        "per_page": 50,
        "previous_page": None,
        "next_page": None,
        "last_page": 1,
        "total_entries": 1,
    }
}


def test_validator_catches_errors(spec_schemas: dict[str, Any]) -> None:
    loc = LOCATIONS[0].to_json()
    del loc["city"]
    with pytest.raises(AssertionError):
        _validate(spec_schemas, "list_locations_response", {"locations": [loc], "meta": META})


def test_responses_match_spec(spec_schemas: dict[str, Any]) -> None:
    _validate(
        spec_schemas,
        "list_server_types_response",
        {"server_types": [st.to_json() for st in SERVER_TYPES], "meta": META},
    )
    _validate(
        spec_schemas,
        "get_server_type_response",
        {"server_type": SERVER_TYPES[0].to_json()},
    )
    _validate(
        spec_schemas,
        "list_images_response",
        {"images": [img.to_json() for img in SYSTEM_IMAGES], "meta": META},
    )
    _validate(spec_schemas, "get_image_response", {"image": SYSTEM_IMAGES[0].to_json()})
    _validate(
        spec_schemas,
        "list_locations_response",
        {"locations": [loc.to_json() for loc in LOCATIONS], "meta": META},
    )
    _validate(
        spec_schemas,
        "list_data_centers_response",
        {
            "datacenters": [dc.to_json() for dc in DATACENTERS],
            "recommendation": static_catalog.RECOMMENDED_DATACENTER_ID,
            "meta": META,
        },
    )
    _validate(spec_schemas, "list_prices_response", pricing())


# ---------------------------------------------------------------------------- hcloud-python


def test_hcloud_python_reads_catalog_objects() -> None:
    import hcloud
    from hcloud.datacenters import BoundDatacenter
    from hcloud.images import BoundImage
    from hcloud.locations import BoundLocation
    from hcloud.server_types import BoundServerType

    client = hcloud.Client(token="x" * 64, api_endpoint="http://127.0.0.1:1/v1")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        for st in SERVER_TYPES:
            bound = BoundServerType(client.server_types, st.to_json())
            assert bound.name == st.name and bound.locations is not None
            assert [stl.location.name for stl in bound.locations] == list(st.location_names)
            assert all(stl.available is not None for stl in bound.locations)
            assert (bound.deprecation is not None) == st.deprecated
        for img in SYSTEM_IMAGES:
            bound_image = BoundImage(client.images, img.to_json())
            assert bound_image.architecture == img.architecture
            assert bound_image.created is not None
        for loc in LOCATIONS:
            assert BoundLocation(client.locations, loc.to_json()).network_zone == loc.network_zone
        for dc in DATACENTERS:
            bound_dc = BoundDatacenter(client.datacenters, dc.to_json())
            assert bound_dc.server_types is not None
            assert bound_dc.server_types.available is not None

"""ray_cluster.yaml is a valid Ray cluster launcher config (Ray's own JSON schema) with GPU autoscaling."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def _schema() -> dict:
    import ray.autoscaler

    path = Path(ray.autoscaler.__file__).with_name("ray-schema.json")
    assert path.is_file(), f"Ray no longer ships {path}"
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def config() -> dict:
    return yaml.safe_load((ROOT / "ray_cluster.yaml").read_text())


def test_cluster_yaml_matches_ray_schema(config):
    jsonschema.validate(config, _schema())


def test_cluster_yaml_has_head_and_autoscaling_gpu_workers(config):
    types = config["available_node_types"]
    assert config["head_node_type"] in types
    gpu = [t for t in types.values() if t["resources"].get("GPU", 0) > 0]
    assert gpu and all(t.get("min_workers", 0) == 0 and t["max_workers"] >= 1 for t in gpu)
    assert all(t["resources"].get("CPU", 0) > t["resources"]["GPU"] for t in gpu)  # CPUs for decode/write beside the GPU
    assert config["provider"]["type"] in ("aws", "gcp", "azure")
    assert any("pip install" in c and "ncst" in c for c in config["setup_commands"])


def test_schema_check_catches_a_broken_config(config):
    broken = copy.deepcopy(config)
    broken["available_node_types"]["gpu_worker"]["resources"]["GPU"] = "one"  # must be an integer
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, _schema())
    del broken["provider"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, _schema())

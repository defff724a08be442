"""``teran encode`` on the suite's Ray instance, data and output on the S3 store."""

import json

import pytest
import yaml
from encode_helpers import assert_exactly_once, assert_matches_model, direct_tokens, make_dataset

from jobs.encode import main


@pytest.mark.integration
@pytest.mark.timeout(600)
def test_the_ray_job_encodes_both_sides_exactly_once_and_a_rerun_does_nothing(s3_root, ray_session, tiny_checkpoint,
                                                                             tiny_model, tmp_path):
    dataset = make_dataset(s3_root.join("data"), images=16)
    output = s3_root.join("emb")
    config = tmp_path / "encode.yaml"
    config.write_text(yaml.safe_dump({
        "input": {"dataset": dataset.location.uri},
        "model": {"checkpoint": tiny_checkpoint},
        "output": {"uri": output.uri},
        "encode": {"batch_size": 8, "prepare_batch_size": 4, "actors": 1},
        "storage": {"endpoint_override": s3_root.storage.endpoint_override},
    }))

    assert main(["--config", str(config)]) == 0
    summary = json.loads(output.join("summary.json").read_text())
    assert summary["complete"] and summary["items"] == 16 + 80
    assert summary["bytes_read"] == sum(s.bytes for k in ("images", "captions") for s in dataset.shards[k])
    for kind in ("images", "captions"):
        embedded, rejects = assert_exactly_once(dataset, output, kind)
        assert rejects.num_rows == 0
        assert_matches_model(embedded, direct_tokens(tiny_model, dataset, kind))
        [encoder] = summary["encoders"][kind].values()  # one actor, busy for a measured time
        assert encoder["items"] == summary["sides"][kind]["items"] and encoder["items_per_s"] > 0

    assert main(["--config", str(config)]) == 0
    again = json.loads(output.join("summary.json").read_text())
    assert again["items"] == 0 and again["complete"]
    assert {k: (s["skipped"], s["finished"]) for k, s in again["sides"].items()} == {"images": (2, 0), "captions": (2, 0)}

"""``teran synth`` on Ray writes, to a local folder or S3, exactly the bytes the in-process generator writes."""

from __future__ import annotations

import pytest
from job_output import printed_json

from jobs import synth as synth_job
from teran_core.data import DatasetManifest, check_dataset, load_split
from teran_core.data.synth import SynthConfig, generate_dataset


@pytest.mark.integration
@pytest.mark.timeout(300)
def test_synth_job_matches_the_pure_generator(storage_root, ray_session, tmp_path, capsys):
    out = storage_root.join("synth")
    argv = ["--out", out.uri, "--images", "240", "--seed", "3", "synth.feature_dim=16", "synth.test_images=80",
            "synth.dev_images=40", "synth.images_per_shard=60", "ray.num_cpus=2"]
    if not out.is_local:
        argv.append(f"storage.endpoint_override={out.storage.endpoint_override}")
    assert synth_job.main(argv) == 0
    summary = printed_json(capsys.readouterr().out)
    assert summary["counts"] == {"images": 240, "captions": 1200} and summary["shards"] == 4
    assert summary["splits"] == {"test": 80, "dev": 40, "train": 120}
    reference = generate_dataset(SynthConfig(images=240, seed=3, feature_dim=16, test_images=80, dev_images=40, images_per_shard=60),
                                 str(tmp_path / "reference"))
    written = DatasetManifest.load(out)
    assert written.to_json() == reference.to_json()  # same shards, checksums, splits: S3 and local are identical
    assert check_dataset(out, verify_checksums=True).rejects.num_rows == 0
    images, captions, index = load_split(out, "dev")
    assert images[0] == "000000080" and len(captions) == 200 and index[-1] == 39


@pytest.mark.integration
@pytest.mark.timeout(120)
def test_existing_dataset_is_kept_unless_overwrite(tmp_path, ray_session, capsys):
    generate_dataset(SynthConfig(images=8, feature_dim=4, group_size=2, test_images=2, dev_images=2), str(tmp_path / "ds"))
    assert synth_job.main(["--out", str(tmp_path / "ds"), "--images", "8", "synth.test_images=0", "synth.dev_images=0"]) == 2
    err = capsys.readouterr().err
    assert "already holds a dataset" in err and "set output.overwrite=true to replace it" in err
    assert synth_job.main(["--out", str(tmp_path / "ds"), "--images", "8", "synth.test_images=0", "synth.dev_images=0",
                           "synth.feature_dim=4", "synth.group_size=2", "output.overwrite=true"]) == 0
    assert DatasetManifest.load(str(tmp_path / "ds")).splits.keys() == {"train"}

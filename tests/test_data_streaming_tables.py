"""Tables bigger than memory: a CSV or Parquet file streamed (``data.loader.in_memory: false``) trains,
evaluates and predicts like the same table in memory, reads every training row once per epoch, and
names a bad cell by file, row and column (a spec in, a behaviour out)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from specnn.cli import cli
from specnn.compiler import compile_spec
from specnn.errors import SpecError
from specnn.launch import train
from specnn.runtime.data import table_loader, table_units
from specnn.runtime.data.prepare import load_splits
from specnn.runtime.data.splits import split_indices
from specnn.runtime.data.table_loader import StreamedTable
from specnn.runtime.data.table_stream import table_streams
from specnn.runtime.runs.evaluate import evaluate
from specnn.runtime.runs.predict import predict
from specnn.spec.loader import load_spec

SPEC = """\
specnn: 1
name: shop
seed: 3
model:
  input: [{width}]
  layers:
    - Linear: {{out_features: 16}}
    - ReLU:
    - Linear: {{out_features: {outputs}}}
data:
  {source}: {{path: {path}, target: {target}{features}}}
  validation_split: 0.2
  test_split: 0.1
  preprocess: {preprocess}
  loader: {loader}
loss:
  {loss}:
optimizer:
  Adam: {{lr: 0.02}}
train: {{epochs: {epochs}, batch_size: 32, device: cpu{metrics}}}
"""

SHOP = "{scale: standard, categorical: {color: onehot}, missing: {a: mean, color: most_frequent}}"
STREAMED = "{in_memory: false, workers: 2}"


def write_spec(folder: Path, name: str = "shop.yaml", *, path: str = "shop.csv", loader: str = STREAMED,
               preprocess: str = SHOP, target: str = "label", features: str = "", width: int = 6, outputs: int = 2,
               loss: str = "CrossEntropyLoss", epochs: int = 8, source: str = "csv") -> Path:
    spec = folder / name
    metrics = ", metrics: [accuracy]" if loss == "CrossEntropyLoss" else ""
    spec.write_text(SPEC.format(path=path, loader=loader, preprocess=preprocess, target=target, width=width,
                                features=f", features: [{features}]" if features else "", outputs=outputs,
                                loss=loss, epochs=epochs, source=source, metrics=metrics))
    return spec


def shop_columns(rows: int, seed: int = 0) -> dict[str, np.ndarray]:
    """label = yes when a + b/2 (+1 for red) > 0.3; every 40th 'a' and every 55th color missing."""
    rng = np.random.default_rng(seed)
    a, b, c = (rng.normal(size=rows).round(4) for _ in range(3))
    color = rng.choice(["red", "green", "blue"], rows).astype(object)
    label = np.where(a + 0.5 * b + (color == "red") > 0.3, "yes", "no").astype(object)
    a_seen = a.astype(object)
    a_seen[7::40] = None
    color[11::55] = None
    return {"id": np.arange(rows), "a": a_seen, "b": b, "c": c, "color": color, "label": label}


def write_csv(path: Path, columns: dict[str, np.ndarray]) -> Path:
    names = list(columns)
    lines = [",".join(names)]
    for i in range(len(columns["id"])):
        lines.append(",".join("" if columns[n][i] is None else str(columns[n][i]) for n in names))
    path.write_text("\n".join(lines) + "\n")
    return path


def write_parquet(path: Path, columns: dict[str, np.ndarray], row_group: int = 256) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({name: pa.array(list(values)) for name, values in columns.items()})
    pq.write_table(table, path, row_group_size=row_group)
    return path


def last_record(run: Path) -> dict:
    return json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])


# ---------------------------------------------------------------------------------------------
# a streamed table trains, evaluates and predicts as the table in memory does


@pytest.mark.parametrize("source", ["csv", "parquet"])
def test_a_streamed_table_learns_like_the_table_in_memory_with_the_same_preprocessing(tmp_path, monkeypatch, source):
    monkeypatch.setattr(table_units, "UNIT_BYTES", 8192)  # a few dozen units from a small file
    columns = shop_columns(1500)
    path = write_csv(tmp_path / "shop.csv", columns) if source == "csv" else \
        write_parquet(tmp_path / "shop.parquet", columns)
    kwargs = {"path": path.name, "source": source, "features": "a, b, c, color"}
    memory = train(load_spec(write_spec(tmp_path, "memory.yaml", loader="{in_memory: true}", **kwargs)),
                   tmp_path / "memory", quiet=True)
    streamed = train(load_spec(write_spec(tmp_path, **kwargs)), tmp_path / "streamed", quiet=True)

    assert streamed.meta["samples"] == memory.meta["samples"] == {"train": 1050, "validation": 300, "test": 150}
    ours, theirs = last_record(streamed.path), last_record(memory.path)
    assert theirs["val_accuracy"] > 0.9 and abs(ours["val_accuracy"] - theirs["val_accuracy"]) < 0.04
    stored = [json.loads((run.path / "preprocess.json").read_text()) for run in (streamed, memory)]
    for key in ("columns", "target", "categorical", "features", "width"):
        assert stored[0][key] == stored[1][key]
    assert stored[0]["missing"]["color"] == stored[1]["missing"]["color"]
    assert stored[0]["missing"]["a"]["value"] == pytest.approx(stored[1]["missing"]["a"]["value"], abs=1e-9)
    for statistic in ("mean", "std"):
        assert np.allclose(stored[0]["scale"][statistic], stored[1]["scale"][statistic], rtol=1e-9, atol=1e-12)

    # evaluate rebuilds the streamed validation split; predict reads rows with the stored preprocessing
    evaluated = evaluate(streamed.path)
    assert evaluated["samples"] == 300
    assert evaluated["metrics"]["accuracy"] == pytest.approx(ours["val_accuracy"], abs=1e-6)
    rows = write_csv(tmp_path / "new.csv", {k: v[:20] for k, v in columns.items() if k != "label"})
    predicted = predict(streamed.path, rows).labels
    assert len(predicted) == 20
    assert np.mean([p == t for p, t in zip(predicted, columns["label"][:20])]) >= 0.8


# ---------------------------------------------------------------------------------------------
# every row once per epoch, across workers and ranks; the in-memory split's rows held out


def _id_splits(tmp_path: Path, monkeypatch, rows: int = 1000):
    """A table whose regression target is the row id, streamed in units of ~40 rows."""
    monkeypatch.setattr(table_units, "UNIT_BYTES", 1024)
    monkeypatch.setattr(table_loader, "SHUFFLE_ROWS", 100)
    columns = shop_columns(rows)
    write_csv(tmp_path / "shop.csv", {"id": columns["id"], "b": columns["b"], "c": columns["c"]})
    spec = load_spec(write_spec(tmp_path, preprocess="{}", target="id", width=2, outputs=1, loss="MSELoss"))
    compiled = compile_spec(spec)
    return load_splits(spec, compiled.inputs, next(iter(compiled.outputs.values())))


def _ids(data: StreamedTable, **kwargs) -> list[list[int]]:
    generator = kwargs.pop("generator", None)
    shuffle = generator is not None
    return [y.reshape(-1).long().tolist() for _, y in data.batches(32, shuffle, generator, **kwargs)]


def test_every_training_row_is_read_once_per_epoch_by_two_workers_and_the_held_out_rows_are_the_in_memory_ones(
        tmp_path, monkeypatch):
    splits = _id_splits(tmp_path, monkeypatch)
    train_at, validation_at, test_at = split_indices(1000, 0.2, 0.1, seed=3)
    assert len(splits.train.reader.file.units) > 15
    data = StreamedTable(splits.train, torch.device("cpu"), workers=2)
    generator = torch.Generator().manual_seed(0)
    epochs = [_ids(data, generator=generator) for _ in range(2)]
    for batches in epochs:
        assert [len(b) for b in batches] == [32] * 21 + [700 - 21 * 32]  # exact batches, the last one short
        seen = sum(batches, [])
        assert sorted(seen) == train_at.tolist()  # each training row exactly once
    assert sum(epochs[0], []) != sum(epochs[1], [])  # reshuffled every epoch
    assert sum(epochs[0], [])[:50] != sorted(sum(epochs[0], []))[:50]  # shuffled, not file order
    # the held-out parts are exactly the rows the in-memory split holds out, disjoint from training
    for part, expected in ((splits.validation, validation_at), (splits.test, test_at)):
        assert sorted(sum(_ids(StreamedTable(part, torch.device("cpu"), workers=0)), [])) == expected.tolist()
    assert not set(validation_at) & set(test_at) and len(validation_at) == 200 and len(test_at) == 100


def test_each_rank_reads_an_equal_disjoint_shard_of_a_streamed_epoch(tmp_path, monkeypatch):
    splits = _id_splits(tmp_path, monkeypatch, rows=1001)  # 701 training rows: one rank's shard is padded
    data = StreamedTable(splits.train, torch.device("cpu"), workers=0)
    shards = [sum(_ids(data, generator=torch.Generator().manual_seed(5), rank=r, world_size=2), []) for r in (0, 1)]
    assert len(shards[0]) == len(shards[1]) == 351
    assert sorted(set(shards[0] + shards[1])) == sorted(sum(_ids(data), []))
    assert len(set(shards[0]) & set(shards[1])) == 1  # the one padding row, taken again from the epoch's head


# ---------------------------------------------------------------------------------------------
# bad cells, located; what streaming cannot do, refused at its key


@pytest.mark.parametrize("cell, message", [
    ("abc", "row 902, column 'b': 'abc' is not a number (if the column holds categories, list it under "
            "data.preprocess.categorical)"),
    ("", "row 902, column 'b': missing value (set data.preprocess.missing to drop these rows or fill them)"),
])
def test_a_bad_cell_found_while_streaming_names_file_row_and_column_exit_2(tmp_path, monkeypatch, cell, message):
    monkeypatch.setattr(table_units, "UNIT_BYTES", 4096)
    columns = shop_columns(1200)
    columns["b"] = columns["b"].astype(object)
    columns["b"][900] = cell  # data row 901: spreadsheet row 902 (the header is row 1)
    path = write_csv(tmp_path / "shop.csv", columns)
    spec = write_spec(tmp_path, features="a, b, c, color")
    result = CliRunner().invoke(cli, ["train", str(spec), "--out", str(tmp_path / "run"), "-q"])
    assert result.exit_code == 2, result.output
    assert f"{path}: {message}" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "run").exists()


def test_a_missing_parquet_cell_is_located_by_row(tmp_path):
    columns = shop_columns(600)
    columns["c"] = columns["c"].astype(object)
    columns["c"][450] = None
    path = write_parquet(tmp_path / "shop.parquet", columns, row_group=100)
    spec = write_spec(tmp_path, path="shop.parquet", source="parquet", features="a, b, c, color")
    result = CliRunner().invoke(cli, ["train", str(spec), "--out", str(tmp_path / "run"), "-q"])
    assert result.exit_code == 2
    assert f"{path}: row 451, column 'c': missing value" in result.output


@pytest.mark.parametrize("change, where, key", [
    ("missing: {a: mean", "missing: {a: median", "data.preprocess.missing.a"),
    ("validation_split: 0.2", "validation_split: 0.2\n  stratify: true", "data.stratify"),
])
def test_what_a_streamed_table_cannot_do_is_refused_at_its_spec_key(tmp_path, change, where, key):
    write_csv(tmp_path / "shop.csv", shop_columns(100))
    spec = write_spec(tmp_path)
    spec.write_text(spec.read_text().replace(change, where))
    with pytest.raises(SpecError) as info:
        train(load_spec(spec), tmp_path / "run", quiet=True)
    assert f"{spec}:" in str(info.value) and f": {key}: " in str(info.value)
    assert "hold the table in memory" in str(info.value) or "in_memory: true" in str(info.value)
    # specnn validate --data makes the same refusal before it reads the first rows
    result = CliRunner().invoke(cli, ["validate", "--data", str(spec)])
    assert result.exit_code == 2 and f": {key}: " in result.output


def test_auto_streams_a_table_whose_features_exceed_the_memory_limit(tmp_path):
    rng = np.random.default_rng(0)
    np.savetxt(tmp_path / "big.csv", rng.normal(size=(70_000, 5)), delimiter=",", fmt="%.3f",
               header="a,b,c,d,y", comments="")  # 70k rows x 4 features x 4 bytes: 1.07 MiB as float32
    for limit, streams in ((1, True), (2, False)):
        spec = write_spec(tmp_path, path="big.csv", loader=f"{{memory_limit_mb: {limit}}}", target="y")
        assert table_streams(load_spec(spec)) is streams


# ---------------------------------------------------------------------------------------------
# under torchrun: each rank streams its own equal, disjoint shard (two real gloo processes)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank_reads(rank: int, world: int, port: int, specs: list[str], folder: str) -> None:
    """One rank: each spec's training split streamed through the trainer's shard_batches, one epoch."""
    import os

    from specnn.runtime.data.streaming import place
    from specnn.runtime.train import distributed as D
    from specnn.runtime.train.shards import shard_batches

    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(world),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    # A rank torchrun starts forks its loader workers; one made by mp.spawn would spawn them (seconds each).
    torch.multiprocessing.set_start_method("fork", force=True)
    read = []
    with D.distributed_session(torch.device("cpu")) as dist:
        for path in specs:
            spec = load_spec(path)
            compiled = compile_spec(spec)
            splits = load_splits(spec, compiled.inputs, next(iter(compiled.outputs.values())))
            data = place(splits.train, torch.device("cpu"), spec=spec, settings=splits.preprocessor.image, train=True)
            seen = [(x, y) for (x,), y in shard_batches(data, 16, dist, shuffle=True,
                                                        generator=torch.Generator().manual_seed(0))]
            read.append({"x": torch.cat([x for x, _ in seen]), "y": torch.cat([y for _, y in seen])})
    torch.save(read, Path(folder) / f"rank{rank}.pt")


@pytest.mark.slow  # two processes (gloo), each streaming a table and an image folder with loader workers
def test_two_ranks_stream_equal_disjoint_shards_of_a_table_and_of_an_image_folder(tmp_path):
    import torch.multiprocessing as mp

    table = _id_table_spec(tmp_path)
    images, memory = _noise_folder_specs(tmp_path)
    mp.spawn(_rank_reads, args=(2, _free_port(), [str(table), str(images)], str(tmp_path)), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]

    # the table: each rank 140 of the 280 training ids, disjoint, together all of them
    ids = [r[0]["y"].reshape(-1).long().tolist() for r in ranks]
    assert len(ids[0]) == len(ids[1]) == 140 and not set(ids[0]) & set(ids[1])
    assert sorted(ids[0] + ids[1]) == split_indices(400, 0.2, 0.1, seed=3)[0].tolist()
    # the image folder: each rank 36 of the 72 training images (told apart by their pixels)
    compiled = compile_spec(load_spec(memory))
    whole = load_splits(load_spec(memory), compiled.inputs, (2,)).train.features["x"]
    key = lambda x: np.round(np.asarray(x, np.float64), 4).tobytes()  # noqa: E731
    shards = [[key(x) for x in r[1]["x"].numpy()] for r in ranks]
    assert len(shards[0]) == len(shards[1]) == 36 and not set(shards[0]) & set(shards[1])
    assert sorted(shards[0] + shards[1]) == sorted(key(x) for x in whole)


def _id_table_spec(folder: Path) -> Path:
    columns = shop_columns(400)
    write_csv(folder / "shop.csv", {"id": columns["id"], "b": columns["b"], "c": columns["c"]})
    return write_spec(folder, preprocess="{}", target="id", width=2, outputs=1, loss="MSELoss")


def _noise_folder_specs(folder: Path) -> tuple[Path, Path]:
    """90 noise images (every one its own pixels) in two classes; streamed with 2 workers, and in memory."""
    image = pytest.importorskip("PIL.Image")
    rng = np.random.default_rng(0)
    for label in ("a", "b"):
        (folder / "pics" / label).mkdir(parents=True)
        for i in range(45):
            image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8)).save(folder / "pics" / label / f"{i}.png")
    text = ("specnn: 1\nname: pics\nseed: 3\nmodel:\n  input: [1, 8, 8]\n  layers:\n    - Flatten:\n"
            "    - Linear: {{out_features: 2}}\ndata:\n  images: {{path: pics, channels: 1}}\n"
            "  validation_split: 0.2\n  loader: {loader}\nloss:\n  CrossEntropyLoss:\noptimizer:\n  SGD: {{lr: 0.1}}\n"
            "train: {{epochs: 1, batch_size: 16, device: cpu}}\n")
    streamed, memory = folder / "streamed.yaml", folder / "memory.yaml"
    streamed.write_text(text.format(loader="{in_memory: false, workers: 2}"))
    memory.write_text(text.format(loader="{in_memory: true}"))
    return streamed, memory


def test_a_target_per_output_and_a_source_that_cannot_stream_are_refused_at_their_key(tmp_path):
    import shutil

    spec = tmp_path / "two_heads.yaml"
    shutil.copy(Path(__file__).parent.parent / "examples" / "data" / "iris.csv", tmp_path / "iris.csv")
    text = (Path(__file__).parent.parent / "examples" / "two_heads.yaml").read_text()
    spec.write_text(text.replace("path: data/iris.csv", "path: iris.csv").replace(
        "  validation_split: 0.2\n", "  validation_split: 0.2\n  loader: {in_memory: false}\n"))
    with pytest.raises(SpecError, match=r": data\.csv\.targets: a target column per output is not streamed yet"):
        train(load_spec(spec), tmp_path / "run", quiet=True)
    synthetic = tmp_path / "synthetic.yaml"
    synthetic.write_text(write_spec(tmp_path).read_text().replace(
        "  csv: {path: shop.csv, target: label}",
        "  synthetic: {shape: [6], classes: 2, samples: 64}").replace(f"  preprocess: {SHOP}\n", ""))
    with pytest.raises(SpecError, match=r": data\.loader\.in_memory: streaming reads image folders and tables"):
        train(load_spec(synthetic), tmp_path / "run", quiet=True)


def test_a_streamed_run_stopped_by_ctrl_c_mid_epoch_resumes_bitwise_to_the_uninterrupted_run(tmp_path, monkeypatch):
    import signal

    from specnn.runtime.train.loop import TrainingInterrupted

    monkeypatch.setattr(table_units, "UNIT_BYTES", 2048)
    write_csv(tmp_path / "shop.csv", shop_columns(400))
    spec = write_spec(tmp_path, loader="{in_memory: false}", features="a, b, c, color", epochs=3)
    whole = train(load_spec(spec), tmp_path / "whole", quiet=True)
    real_step, count = torch.optim.Adam.step, {"n": 0}

    def step(self, *args, **kwargs):  # step 13 of 9 per epoch: epoch 2, batch 4 presses Ctrl-C
        count["n"] += 1
        if count["n"] == 13:
            signal.raise_signal(signal.SIGINT)
        return real_step(self, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(torch.optim.Adam, "step", step)
        with pytest.raises(TrainingInterrupted, match="epoch 2, batch 4"):
            train(load_spec(spec), tmp_path / "cut", quiet=True)
    resumed = train(load_spec(spec), tmp_path / "cut", quiet=True, resume=True)
    for name, weight in whole.model.state_dict().items():
        assert torch.equal(weight, resumed.model.state_dict()[name]), name

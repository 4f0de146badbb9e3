"""Built-in datasets, the IDX reader/writer, MNIST-layout folders and load_file (npz/CSV/IDX).

Everything is offline: files are written to tmp_path; nothing is downloaded.
"""

import gzip
import sys

import numpy as np
import pytest

from xpnet.data import (
    DATASETS,
    Dataset,
    list_datasets,
    load_dataset,
    load_file,
    load_idx,
    load_mnist,
    save_idx,
)

SYNTHETIC = ["linear", "spirals", "moons", "sine"]
GATES = {
    "xor": [0, 1, 1, 0],
    "and": [0, 0, 0, 1],
    "or": [0, 1, 1, 1],
    "nand": [1, 1, 1, 0],
    "nor": [1, 0, 0, 0],
}


def _check_dataset(ds, n, d, task, num_classes):
    assert isinstance(ds, Dataset)
    assert ds.X.dtype == np.float64 and ds.X.shape == (n, d)
    assert ds.task == task and ds.num_classes == num_classes
    assert len(ds) == ds.n_samples == n and ds.n_features == d
    assert ds.source and ds.description and ds.name
    assert np.isfinite(ds.X).all()
    if task == "classification":
        assert ds.y.dtype == np.int64 and ds.y.shape == (n,)
        assert ds.y.min() >= 0 and ds.y.max() < num_classes
    else:
        assert ds.y.dtype == np.float64 and ds.y.shape == (n, 1)


# ----------------------------------------------------------------------------- registry


def test_list_datasets():
    names = list_datasets()
    assert names == list(DATASETS)
    for name in [*GATES, *SYNTHETIC, "digits", "iris", "breast_cancer", "mnist", "fashion_mnist"]:
        assert name in names


@pytest.mark.parametrize("gate", sorted(GATES))
def test_logic_gates(gate):
    ds = load_dataset(gate)
    _check_dataset(ds, 4, 2, "classification", 2)
    np.testing.assert_array_equal(ds.X, [[0, 0], [0, 1], [1, 0], [1, 1]])
    np.testing.assert_array_equal(ds.y, GATES[gate])
    # The logic of each gate, computed independently from the inputs.
    a, b = ds.X[:, 0].astype(bool), ds.X[:, 1].astype(bool)
    truth = {"xor": a ^ b, "and": a & b, "or": a | b, "nand": ~(a & b), "nor": ~(a | b)}[gate]
    np.testing.assert_array_equal(ds.y, truth.astype(int))


def test_linear_is_separable_with_margin():
    ds = load_dataset("linear")
    _check_dataset(ds, 100, 2, "classification", 2)
    side = 0.6 * ds.X[:, 0] - 0.8 * ds.X[:, 1] + 0.1
    np.testing.assert_array_equal(ds.y, (side > 0).astype(int))
    assert np.abs(side).min() >= 0.1
    assert 20 <= ds.y.sum() <= 80
    assert (np.abs(ds.X) <= 1).all()


@pytest.mark.parametrize("name", SYNTHETIC)
def test_synthetic_sets_are_seeded(name):
    kw = {"noise": 0.1} if name == "sine" else {}
    a, b = load_dataset(name, seed=1, **kw), load_dataset(name, seed=1, **kw)
    c = load_dataset(name, seed=2, **kw)
    np.testing.assert_array_equal(a.X, b.X)
    np.testing.assert_array_equal(a.y, b.y)
    assert not (np.array_equal(a.X, c.X) and np.array_equal(a.y, c.y))


def test_spirals_and_moons_shapes():
    sp = load_dataset("spirals")
    _check_dataset(sp, 200, 2, "classification", 2)
    np.testing.assert_array_equal(np.bincount(sp.y), [100, 100])
    sp3 = load_dataset("spirals", n_samples=301, num_classes=3, noise=0.0)
    _check_dataset(sp3, 301, 2, "classification", 3)
    np.testing.assert_array_equal(np.bincount(sp3.y), [101, 100, 100])
    r = np.hypot(sp3.X[:, 0], sp3.X[:, 1])
    assert r.min() >= 0.1 - 1e-12 and r.max() <= 1.0 + 1e-12  # noise-free radii stay in [0.1, 1]
    mo = load_dataset("moons", n_samples=51, noise=0.0)
    _check_dataset(mo, 51, 2, "classification", 2)
    outer = mo.X[mo.y == 0]
    np.testing.assert_allclose(np.hypot(outer[:, 0], outer[:, 1]), 1.0, atol=1e-12)
    inner = mo.X[mo.y == 1]
    np.testing.assert_allclose(np.hypot(inner[:, 0] - 1.0, inner[:, 1] - 0.5), 1.0, atol=1e-12)


def test_sine_regression():
    ds = load_dataset("sine", n_samples=50)
    _check_dataset(ds, 50, 1, "regression", None)
    assert ds.X[0, 0] == -np.pi and ds.X[-1, 0] == np.pi
    np.testing.assert_array_equal(ds.y, np.sin(ds.X))  # noise=0 by default
    noisy = load_dataset("sine", n_samples=50, noise=0.1, seed=3)
    resid = noisy.y - np.sin(noisy.X)
    assert 0.05 < resid.std() < 0.2


def test_bad_names_and_options():
    with pytest.raises(ValueError, match="Did you mean 'spirals'"):
        load_dataset("spiral")
    with pytest.raises(TypeError, match=r"unexpected option\(s\) \['n'\]"):
        load_dataset("xor", n=3)
    with pytest.raises(ValueError, match="n_samples"):
        load_dataset("moons", n_samples=0)
    with pytest.raises(ValueError, match="noise"):
        load_dataset("spirals", noise=-1.0)
    assert load_dataset("XOR").name == "xor"  # names are case-insensitive
    with pytest.raises(ValueError, match="needs path="):
        load_dataset("Fashion-MNIST")  # and '-' means '_'
    with pytest.raises(ValueError, match="needs path="):
        load_dataset("mnist")


# ----------------------------------------------------------------------------- UCI via sklearn


def test_digits():
    pytest.importorskip("sklearn")
    ds = load_dataset("digits")
    _check_dataset(ds, 1797, 64, "classification", 10)
    assert ds.feature_shape == (8, 8)
    assert ds.X.min() == 0.0 and ds.X.max() == 16.0
    assert set(np.unique(ds.X)) <= set(range(17))
    np.testing.assert_array_equal(np.unique(ds.y), np.arange(10))
    assert "UCI" in ds.source and "Dua" in ds.source and "Alpaydin" in ds.source


def test_iris_and_breast_cancer():
    pytest.importorskip("sklearn")
    iris = load_dataset("iris")
    _check_dataset(iris, 150, 4, "classification", 3)
    np.testing.assert_array_equal(np.bincount(iris.y), [50, 50, 50])
    assert iris.target_names == ("setosa", "versicolor", "virginica")
    bc = load_dataset("breast_cancer")
    _check_dataset(bc, 569, 30, "classification", 2)
    np.testing.assert_array_equal(np.bincount(bc.y), [212, 357])
    for ds in (iris, bc):
        assert "UCI" in ds.source and "Dua" in ds.source


@pytest.mark.parametrize("name", ["digits", "iris", "breast_cancer"])
def test_missing_sklearn_says_how_to_install(monkeypatch, name):
    # A None entry in sys.modules makes `import sklearn...` raise ImportError.
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(ImportError, match=r'pip install "xpnet\[datasets\]"'):
        load_dataset(name)


# ----------------------------------------------------------------------------- IDX


IDX_DTYPES = ["uint8", "int8", "int16", "int32", "float32", "float64"]


@pytest.mark.parametrize("dtype", IDX_DTYPES)
@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_idx_round_trip(tmp_path, dtype, suffix):
    rng = np.random.default_rng(0)
    info = np.iinfo(dtype) if np.dtype(dtype).kind in "iu" else None
    for shape in [(7,), (3, 4), (2, 3, 5)]:
        if info is not None:
            a = rng.integers(info.min, info.max, size=shape, endpoint=True).astype(dtype)
        else:
            a = rng.standard_normal(shape).astype(dtype)
        path = save_idx(tmp_path / f"a{len(shape)}.idx{suffix}", a)
        raw = path.read_bytes()
        assert (raw[:2] == b"\x1f\x8b") == (suffix == ".gz")
        b = load_idx(path)
        assert b.dtype == np.dtype(dtype) and b.dtype.isnative and b.shape == shape
        np.testing.assert_array_equal(b, a)
        assert b.flags.writeable


def test_idx_writer_matches_the_byte_format(tmp_path):
    # uint8 (2, 3): magic 00 00 08 02, dims as big-endian uint32, then the bytes.
    expected = bytes([0, 0, 0x08, 2, 0, 0, 0, 2, 0, 0, 0, 3, 1, 2, 3, 4, 5, 255])
    path = save_idx(tmp_path / "u8.idx", np.array([[1, 2, 3], [4, 5, 255]], dtype=np.uint8))
    assert path.read_bytes() == expected
    # int16 (2,): big-endian values 258 -> 01 02, -2 -> FF FE.
    path = save_idx(tmp_path / "i16.idx", np.array([258, -2], dtype=np.int16))
    assert path.read_bytes() == bytes([0, 0, 0x0B, 1, 0, 0, 0, 2, 0x01, 0x02, 0xFF, 0xFE])
    # float32 1.0 is 3F 80 00 00; float64 -2.0 is C0 00 00 00 00 00 00 00.
    path = save_idx(tmp_path / "f.idx", np.array([1.0], dtype=np.float32))
    assert path.read_bytes() == bytes([0, 0, 0x0D, 1, 0, 0, 0, 1, 0x3F, 0x80, 0, 0])
    path = save_idx(tmp_path / "d.idx", np.array([-2.0]))
    assert path.read_bytes() == bytes([0, 0, 0x0E, 1, 0, 0, 0, 1, 0xC0] + [0] * 7)


def test_idx_reader_on_hand_built_file(tmp_path):
    raw = bytes([0, 0, 0x0C, 2, 0, 0, 0, 1, 0, 0, 0, 2]) + (7).to_bytes(4, "big") + (-1).to_bytes(4, "big", signed=True)
    (tmp_path / "h.idx").write_bytes(raw)
    (tmp_path / "h.idx.gz").write_bytes(gzip.compress(raw))
    for name in ("h.idx", "h.idx.gz"):
        a = load_idx(tmp_path / name)
        assert a.dtype == np.int32 and a.shape == (1, 2)
        np.testing.assert_array_equal(a, [[7, -1]])


def test_idx_corrupt_files(tmp_path):
    good = save_idx(tmp_path / "g.idx", np.arange(12, dtype=np.uint8).reshape(3, 4)).read_bytes()
    cases = {
        "short.idx": (good[:-2], r"truncated: shape \(3, 4\) of uint8 needs 12 data bytes .* got 10"),
        "long.idx": (good + b"\x00", r"trailing bytes.*needs 12 .* got 13"),
        "header.idx": (good[:6], r"truncated: the header declares 2 dimensions.*12 header bytes, got 6"),
        "tiny.idx": (b"\x00\x00", "at least a 4-byte IDX header, got 2"),
        "magic.idx": (b"PK\x03\x04" + good[4:], "bad magic number 0x504b0304"),
        "dtype.idx": (b"\x00\x00\x0a\x02" + good[4:], "unknown IDX dtype code 0x0A"),
    }
    for name, (raw, pattern) in cases.items():
        (tmp_path / name).write_bytes(raw)
        with pytest.raises(ValueError, match=pattern):
            load_idx(tmp_path / name)
    (tmp_path / "cut.idx.gz").write_bytes(gzip.compress(good)[:-6])
    with pytest.raises(ValueError, match="corrupt or truncated gzip"):
        load_idx(tmp_path / "cut.idx.gz")
    # A valid gzip stream of a truncated IDX file reports the IDX size problem.
    (tmp_path / "short.idx.gz").write_bytes(gzip.compress(good[:-1]))
    with pytest.raises(ValueError, match="truncated"):
        load_idx(tmp_path / "short.idx.gz")
    with pytest.raises(FileNotFoundError, match="load_idx: no such file: .*nope.idx"):
        load_idx(tmp_path / "nope.idx")


def test_save_idx_rejects_unstorable_dtypes(tmp_path):
    with pytest.raises(TypeError, match="cannot store dtype int64"):
        save_idx(tmp_path / "x.idx", np.arange(3))
    assert not list(tmp_path.iterdir())  # nothing half-written


# ----------------------------------------------------------------------------- MNIST layout


def _fake_mnist(folder, kind="train", n=5, gz=True, dotted=False, n_labels=None):
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, size=(n, 28, 28)).astype(np.uint8)
    labels = rng.integers(0, 10, size=n_labels or n).astype(np.uint8)
    sep = "." if dotted else "-"
    ext = ".gz" if gz else ""
    folder.mkdir(exist_ok=True)
    save_idx(folder / f"{kind}-images{sep}idx3-ubyte{ext}", images)
    save_idx(folder / f"{kind}-labels{sep}idx1-ubyte{ext}", labels)
    return images, labels


@pytest.mark.parametrize("gz,dotted", [(True, False), (False, False), (False, True)])
def test_load_mnist(tmp_path, gz, dotted):
    images, labels = _fake_mnist(tmp_path / "m", gz=gz, dotted=dotted)
    ds = load_mnist(tmp_path / "m")
    _check_dataset(ds, 5, 784, "classification", 10)
    assert ds.feature_shape == (28, 28)
    np.testing.assert_array_equal(ds.X, images.reshape(5, 784) / 255.0)
    np.testing.assert_array_equal(ds.y, labels)
    assert 0.0 <= ds.X.min() and ds.X.max() <= 1.0


def test_load_mnist_errors_and_kinds(tmp_path):
    _fake_mnist(tmp_path / "m", kind="t10k", n=3)
    assert load_mnist(tmp_path / "m", "t10k").n_samples == 3
    assert load_mnist(tmp_path / "m", "test").n_samples == 3
    fm = load_dataset("fashion_mnist", path=tmp_path / "m", kind="t10k")
    assert fm.name == "fashion_mnist" and "Xiao" in fm.source
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte, train-images-idx3-ubyte.gz"):
        load_mnist(tmp_path / "m", "train")
    with pytest.raises(FileNotFoundError, match="not a directory"):
        load_mnist(tmp_path / "missing")
    with pytest.raises(ValueError, match="kind"):
        load_mnist(tmp_path / "m", "valid")
    _fake_mnist(tmp_path / "bad", n=4, n_labels=3)
    with pytest.raises(ValueError, match="4 images but 3 labels"):
        load_mnist(tmp_path / "bad")


# ----------------------------------------------------------------------------- load_file


def test_load_npz(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((6, 2, 3)).astype(np.float32)
    np.savez(tmp_path / "c.npz", X=X, y=np.array([0, 1, 2, 1, 0, 2]))
    ds = load_file(tmp_path / "c.npz")
    _check_dataset(ds, 6, 6, "classification", 3)
    assert ds.feature_shape == (2, 3)
    np.testing.assert_array_equal(ds.X, X.reshape(6, 6).astype(np.float64))

    np.savez(tmp_path / "r.npz", X=X[:, 0, :], y=np.linspace(-1, 1, 6))
    ds = load_file(tmp_path / "r.npz")
    _check_dataset(ds, 6, 3, "regression", None)
    np.testing.assert_array_equal(ds.y[:, 0], np.linspace(-1, 1, 6))

    np.savez(tmp_path / "k.npz", X=X, labels=np.arange(6))
    assert load_file(tmp_path / "k.npz", target="labels").num_classes == 6
    assert load_file(tmp_path / "k.npz", target=None).y is None
    with pytest.raises(ValueError, match=r"no target array 'y'; found keys \['X', 'labels'\]"):
        load_file(tmp_path / "k.npz")
    np.savez(tmp_path / "noX.npz", data=X)
    with pytest.raises(ValueError, match="expected arrays 'X'"):
        load_file(tmp_path / "noX.npz")
    np.savez(tmp_path / "obj.npz", X=np.array([{"a": 1}, None], dtype=object), y=np.arange(2))
    with pytest.raises(ValueError, match="never loaded"):
        load_file(tmp_path / "obj.npz")
    np.savez(tmp_path / "len.npz", X=X, y=np.arange(5))
    with pytest.raises(ValueError, match="X has 6 samples but y has 5"):
        load_file(tmp_path / "len.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a readable .npz"):
        load_file(tmp_path / "junk.npz")


def test_load_csv(tmp_path):
    (tmp_path / "h.csv").write_text("x1,x2,label\n0.5,1,0\n# comment\n\n-2,3e-1,2\n1,1,1\n")
    ds = load_file(tmp_path / "h.csv")
    _check_dataset(ds, 3, 2, "classification", 3)
    np.testing.assert_array_equal(ds.X, [[0.5, 1.0], [-2.0, 0.3], [1.0, 1.0]])
    np.testing.assert_array_equal(ds.y, [0, 2, 1])
    assert ds.feature_names == ("x1", "x2")

    by_name = load_file(tmp_path / "h.csv", target="x1", task="regression")
    _check_dataset(by_name, 3, 2, "regression", None)
    np.testing.assert_array_equal(by_name.y[:, 0], [0.5, -2.0, 1.0])

    (tmp_path / "n.csv").write_text("1,0.5,0.25\n0,1.5,2.5\n")
    first = load_file(tmp_path / "n.csv", target=0)
    np.testing.assert_array_equal(first.y, [1, 0])
    np.testing.assert_array_equal(first.X, [[0.5, 0.25], [1.5, 2.5]])
    reg = load_file(tmp_path / "n.csv")  # last column 0.25, 2.5: not whole numbers
    _check_dataset(reg, 2, 2, "regression", None)
    unlabelled = load_file(tmp_path / "n.csv", target=None)
    assert unlabelled.y is None and unlabelled.X.shape == (2, 3)

    (tmp_path / "t.tsv").write_text("1\t2\t1\n3\t4\t0\n")
    np.testing.assert_array_equal(load_file(tmp_path / "t.tsv").y, [1, 0])


def test_csv_errors(tmp_path):
    cases = {
        "ragged.csv": ("a,b,c\n1,2,3\n4,5\n", r"line 3 has 2 columns, expected 3"),
        "text.csv": ("a,b,c\n1,2,3\n4,five,6\n", r"line 3, column 2 \('b'\): cannot read 'five'"),
        "empty_cell.csv": ("1,2,3\n4,,6\n", r"line 2, column 2: cannot read ''"),
        "nan.csv": ("1,2,3\n4,nan,6\n", r"line 2, column 2: .*'nan'"),
        "partial_header.csv": ("x,2,label\n1,2,3\n", r"line 1, column 1: .*header=True"),
        "empty.csv": ("\n# nothing\n", "no data rows"),
        "negative.csv": ("1,-1\n2,1\n", None),
    }
    for name, (text, pattern) in cases.items():
        (tmp_path / name).write_text(text)
        if pattern is not None:
            with pytest.raises(ValueError, match=pattern):
                load_file(tmp_path / name)
    # Other negative labels are refused as classification, with the remapping hint.
    (tmp_path / "minus2.csv").write_text("1,-2\n2,0\n3,1\n")
    with pytest.raises(ValueError, match=r"got -2\. Hint: remap them \(e.g. -1/\+1 -> 0/1\)"):
        load_file(tmp_path / "minus2.csv", task="classification")
    (tmp_path / "ok.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match=r"no column named 'z'; columns are \['a', 'b'\]"):
        load_file(tmp_path / "ok.csv", target="z")
    with pytest.raises(ValueError, match="has no header"):
        load_file(tmp_path / "negative.csv", target="y")
    with pytest.raises(ValueError, match="out of range"):
        load_file(tmp_path / "negative.csv", target=5)
    with pytest.raises(ValueError, match="task must be"):
        load_file(tmp_path / "negative.csv", task="ranking")


def test_minus_one_plus_one_labels_become_binary_classes(tmp_path):
    (tmp_path / "pm.csv").write_text("0.5,1\n1.5,-1\n2.5,1\n3.5,-1\n")
    for task in (None, "classification"):
        with pytest.warns(UserWarning, match=r"labels -1/\+1 read as binary classes 0/1"):
            ds = load_file(tmp_path / "pm.csv", task=task)
        _check_dataset(ds, 4, 1, "classification", 2)
        np.testing.assert_array_equal(ds.y, [1, 0, 1, 0])
        assert ds.target_names == ("-1", "1")
    reg = load_file(tmp_path / "pm.csv", task="regression")
    np.testing.assert_array_equal(reg.y[:, 0], [1.0, -1.0, 1.0, -1.0])


def test_task_inference_rules(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((300, 2))

    def write(name, y):
        np.savetxt(tmp_path / name, np.column_stack([X[: len(y)], y]), delimiter=",")
        return tmp_path / name

    # Few non-negative whole numbers below 1000: class labels.
    ds = load_file(write("cls.csv", np.arange(40) % 4))
    _check_dataset(ds, 40, 2, "classification", 4)
    # Whole-number prices: few distinct values but labels >= 1000 -> ambiguous, one line,
    # plain ints (not np.int64(...)), and the CLI flag in the hint.
    prices = write("prices.csv", np.array([1634, 1500, 1200, 900, 1634, 2000] * 3))
    with pytest.raises(ValueError, match=r"5 distinct whole numbers from 900 to 2000") as err:
        load_file(prices)
    msg = str(err.value)
    assert "np." not in msg and "\n" not in msg and "--task classification|regression" in msg
    assert load_file(prices, task="regression").task == "regression"
    # Many distinct whole numbers in a float column (counts, prices): regression.
    many = load_file(write("many.csv", np.arange(300) * 7))
    assert many.task == "regression" and many.y.shape == (300, 1)
    # Negative whole numbers other than -1/+1: ambiguous.
    with pytest.raises(ValueError, match=r"from -2 to 2.*task='regression'"):
        load_file(write("neg.csv", np.arange(20) % 5 - 2))
    # An integer array with more than 100 values: ambiguous too (it says "labels", but 200
    # output classes are unlikely to be meant).
    np.savez(tmp_path / "ints.npz", X=X[:200], y=np.arange(200))
    with pytest.raises(ValueError, match="200 distinct whole numbers"):
        load_file(tmp_path / "ints.npz")
    assert load_file(tmp_path / "ints.npz", task="classification").num_classes == 200


def test_has_mnist_split(tmp_path):
    from xpnet.data import has_mnist_split

    _fake_mnist(tmp_path / "m", n=3)
    assert not has_mnist_split(tmp_path / "m", "t10k")
    assert has_mnist_split(tmp_path / "m", "train")
    _fake_mnist(tmp_path / "m", kind="t10k", n=2)
    assert has_mnist_split(tmp_path / "m")
    (tmp_path / "m" / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError, match=r"t10k-images-idx3-ubyte.gz but no t10k labels file"):
        has_mnist_split(tmp_path / "m")


@pytest.mark.parametrize("dtype", [None, "float32", "float64", np.float32])
def test_load_dataset_dtype(dtype):
    want = np.float64 if dtype is None else np.dtype(dtype).type
    iris = load_dataset("iris", dtype=dtype)
    assert iris.X.dtype == want and iris.y.dtype == np.int64
    np.testing.assert_array_equal(iris.X, load_dataset("iris").X.astype(want))
    sine = load_dataset("sine", n_samples=5, dtype=dtype)
    assert sine.X.dtype == want and sine.y.dtype == want
    assert f"X={np.dtype(want).name}(150, 4)" in repr(iris)


def test_load_dataset_dtype_errors():
    with pytest.raises(ValueError, match="dtype must be None, 'float32' or 'float64', got 'int8'"):
        load_dataset("xor", dtype="int8")


def test_load_file_idx_and_folders(tmp_path):
    images, labels = _fake_mnist(tmp_path / "m", n=4)
    ds = load_file(tmp_path / "m" / "train-images-idx3-ubyte.gz")
    _check_dataset(ds, 4, 784, "classification", int(labels.max()) + 1)
    np.testing.assert_array_equal(ds.X, images.reshape(4, -1) / 255.0)
    np.testing.assert_array_equal(ds.y, labels)
    folder = load_file(tmp_path / "m")
    assert folder.num_classes == 10 and folder.n_samples == 4
    only = load_file(tmp_path / "m" / "train-images-idx3-ubyte.gz", target=None)
    assert only.y is None and only.feature_shape == (28, 28)

    save_idx(tmp_path / "feats.idx", np.arange(6, dtype=np.float32).reshape(3, 2))
    save_idx(tmp_path / "lab.idx", np.array([1, 0, 1], dtype=np.uint8))
    pair = load_file(tmp_path / "feats.idx", target=tmp_path / "lab.idx")
    np.testing.assert_array_equal(pair.X, [[0, 1], [2, 3], [4, 5]])  # float data is not rescaled
    np.testing.assert_array_equal(pair.y, [1, 0, 1])
    with pytest.raises(FileNotFoundError, match="no label file"):
        load_file(tmp_path / "feats.idx")

    with pytest.raises(FileNotFoundError, match="no such file"):
        load_file(tmp_path / "missing.csv")
    (tmp_path / "data.json").write_text("{}")
    with pytest.raises(ValueError, match="cannot tell the format"):
        load_file(tmp_path / "data.json")

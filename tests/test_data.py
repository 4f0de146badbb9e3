"""DataLoader, train/test split, scalers and one_hot, on every backend.

Oracles are plain NumPy indexing and formulas on the host (never the code under test run
on another backend), so these tests also mean something on the numpy backend.
"""

import numpy as np
import pytest

import xpnet
from xpnet import _backend
from xpnet.data import DataLoader, MinMaxScaler, StandardScaler, one_hot, train_test_split

# Scaler statistics are means of O(1) float64 values over <= 50 samples: rounding error is
# a few ulp (~1e-15 relative); 1e-12 leaves room for summation order differences between
# backends while any formula error (ddof, missing shift) is O(1e-2) or larger.
F64_TOL = 1e-12
# float32 transform: rounding X (size |x|) to float32 and subtracting the mean costs about
# eps32 * |x| absolute, magnified by 1/std in z; 4 * that bound per feature is safe. The
# round trip back to x costs a few eps32 * |x| (|x| <= ~10 here), so 1e-5 absolute is safe.
EPS32 = float(np.finfo(np.float32).eps)
F32_ROUNDTRIP_TOL = 1e-5


def _host_data(n=23, d=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)).astype(np.float32)
    y = rng.integers(0, 4, size=n).astype(np.int64)
    return X, y


def _expected_batches(X, y, order, batch_size, drop_last=False):
    out = []
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        if drop_last and len(idx) < batch_size:
            break
        out.append((X[idx], y[idx]))
    return out


# ----------------------------------------------------------------------------- DataLoader


@pytest.mark.parametrize("drop_last", [False, True])
def test_shuffled_batches_identical_on_every_backend(backend, drop_last):
    X, y = _host_data()
    bs = 5
    loader = DataLoader(backend.asarray(X), backend.asarray(y), batch_size=bs, shuffle=True,
                        drop_last=drop_last, generator=np.random.default_rng(7))
    oracle = np.random.default_rng(7)  # the same stream, drawn by hand: one permutation per epoch
    assert len(loader) == (4 if drop_last else 5)
    for _epoch in range(2):
        expected = _expected_batches(X, y, oracle.permutation(len(X)), bs, drop_last)
        got = list(loader)
        assert len(got) == len(expected) == len(loader)
        for (xb, yb), (ex, ey) in zip(got, expected):
            backend.check(xb, dtype="float32", shape=ex.shape)
            backend.check(yb, dtype="int64", shape=ey.shape)
            np.testing.assert_array_equal(backend.to_numpy(xb), ex)
            np.testing.assert_array_equal(backend.to_numpy(yb), ey)


def test_sequential_batches_and_last_partial_batch(backend):
    X, y = _host_data(n=11)
    X3 = np.arange(11 * 2 * 3, dtype=np.float64).reshape(11, 2, 3)
    loader = DataLoader(backend.asarray(X3), backend.asarray(y), batch_size=4)
    assert len(loader) == 3
    got = list(loader)
    assert [tuple(xb.shape) for xb, _ in got] == [(4, 2, 3), (4, 2, 3), (3, 2, 3)]
    for i, (xb, yb) in enumerate(got):
        backend.check(xb, dtype="float64")
        backend.check(yb, dtype="int64")
        np.testing.assert_array_equal(backend.to_numpy(xb), X3[4 * i:4 * i + 4])
        np.testing.assert_array_equal(backend.to_numpy(yb), y[4 * i:4 * i + 4])
    dropped = DataLoader(backend.asarray(X3), backend.asarray(y), batch_size=4, drop_last=True)
    assert len(dropped) == 2
    assert [tuple(xb.shape) for xb, _ in dropped] == [(4, 2, 3), (4, 2, 3)]


def test_x_only_yields_arrays(backend):
    X, _ = _host_data(n=7)
    loader = DataLoader(backend.asarray(X), batch_size=3, shuffle=True, generator=1)
    perm = np.random.default_rng(1).permutation(7)
    batches = list(loader)
    assert len(batches) == 3
    for i, xb in enumerate(batches):
        backend.check(xb, dtype="float32")
        np.testing.assert_array_equal(backend.to_numpy(xb), X[perm[3 * i:3 * i + 3]])


def test_batch_size_larger_than_dataset(backend):
    X, y = _host_data(n=3)
    loader = DataLoader(backend.asarray(X), backend.asarray(y), batch_size=10)
    assert len(loader) == 1
    ((xb, yb),) = list(loader)
    backend.check(xb, shape=(3, 3))
    assert len(DataLoader(backend.asarray(X), batch_size=10, drop_last=True)) == 0
    assert list(DataLoader(backend.asarray(X), batch_size=10, drop_last=True)) == []


def test_generator_advances_one_permutation_per_epoch():
    X, y = _host_data(n=13)
    gen = np.random.default_rng(42)
    ref = np.random.default_rng(42)
    loader = DataLoader(X, y, batch_size=4, shuffle=True, generator=gen)
    it = iter(loader)  # the draw happens here, before any batch is consumed
    ref.permutation(13)
    assert gen.bit_generator.state == ref.bit_generator.state
    next(it)  # consuming (part of) an epoch draws nothing more
    assert gen.bit_generator.state == ref.bit_generator.state
    list(loader)
    ref.permutation(13)
    assert gen.bit_generator.state == ref.bit_generator.state


def test_no_shuffle_leaves_generator_alone():
    X, y = _host_data(n=13)
    gen = np.random.default_rng(3)
    before = gen.bit_generator.state
    list(DataLoader(X, y, batch_size=4, generator=gen))
    assert gen.bit_generator.state == before


def test_int_seed_gives_reproducible_but_changing_epochs():
    X, y = _host_data(n=20)
    a = DataLoader(X, y, batch_size=20, shuffle=True, generator=5)
    b = DataLoader(X, y, batch_size=20, shuffle=True, generator=5)
    a1, a2 = [xb for xb, _ in a][0], [xb for xb, _ in a][0]
    b1, b2 = [xb for xb, _ in b][0], [xb for xb, _ in b][0]
    np.testing.assert_array_equal(a1, b1)
    np.testing.assert_array_equal(a2, b2)
    assert not np.array_equal(a1, a2)  # epoch 2 draws a new order
    np.testing.assert_array_equal(np.sort(a1, axis=0), np.sort(X, axis=0))


def test_restoring_generator_state_replays_the_epoch():
    X, y = _host_data(n=17)
    gen = np.random.default_rng(11)
    loader = DataLoader(X, y, batch_size=4, shuffle=True, generator=gen)
    list(loader)
    saved = xpnet.get_rng_state(gen)
    epoch2 = [yb for _, yb in loader]
    xpnet.set_rng_state(saved, gen)
    replay = [yb for _, yb in loader]
    for a, b in zip(epoch2, replay, strict=True):
        np.testing.assert_array_equal(a, b)


def test_default_generator_follows_manual_seed():
    X, y = _host_data(n=9)
    saved = xpnet.get_rng_state()
    try:
        loader = DataLoader(X, y, batch_size=9, shuffle=True)  # built before seeding
        xpnet.manual_seed(123)
        (_, yb), = list(loader)
        np.testing.assert_array_equal(yb, y[np.random.default_rng(123).permutation(9)])
    finally:
        xpnet.manual_seed(0)
        xpnet.set_rng_state(saved)


def test_sequential_numpy_batches_are_views():
    X, y = _host_data(n=10)
    xb, yb = next(iter(DataLoader(X, y, batch_size=4)))
    assert np.shares_memory(xb, X) and np.shares_memory(yb, y)


def test_lists_are_accepted():
    xb, yb = next(iter(DataLoader([[0.0, 1.0], [2.0, 3.0]], [0, 1], batch_size=2)))
    assert isinstance(xb, np.ndarray) and xb.shape == (2, 2)
    np.testing.assert_array_equal(yb, [0, 1])


@pytest.mark.parametrize("bad", [0, -1, 2.5, True, "8", None])
def test_bad_batch_size(bad):
    X, y = _host_data(n=4)
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        DataLoader(X, y, batch_size=bad)


def test_validation_errors():
    X, y = _host_data(n=6)
    with pytest.raises(ValueError, match=r"same number of samples.*\(6, 3\).*\(5,\)"):
        DataLoader(X, y[:5])
    with pytest.raises(ValueError, match="no samples"):
        DataLoader(X[:0], y[:0])
    with pytest.raises(ValueError, match="0-d"):
        DataLoader(np.float64(1.0))
    with pytest.raises(TypeError, match="must be an array"):
        DataLoader("not data")
    with pytest.raises(TypeError, match="generator"):
        DataLoader(X, y, shuffle=True, generator="seed")


@pytest.mark.parametrize("where", ["X", "y"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_values_rejected_once_at_construction(backend, where, bad):
    X, _ = _host_data(n=9)
    y = np.linspace(0.0, 1.0, 9).astype(np.float32)
    (X if where == "X" else y)[5, ...] = bad
    Xb, yb = backend.asarray(X), backend.asarray(y)
    with pytest.raises(ValueError, match=rf"DataLoader: {where} contains NaN or infinite values "
                                         r"\(1 of 9 samples, first at index 5\)"):
        DataLoader(Xb, yb, batch_size=4)
    # Opting out (fit does, after validating the data itself) iterates the values as given.
    loader = DataLoader(Xb, yb, batch_size=4, validate=False)
    got = np.concatenate([backend.to_numpy(b[0 if where == "X" else 1]).reshape(-1) for b in loader])
    assert np.isnan(bad) == np.isnan(got).any() and np.isinf(bad) == np.isinf(got).any()


def test_validation_makes_one_transfer_and_skips_integer_arrays(backend, monkeypatch):
    X, y = _host_data(n=7)
    Xb, yb, ib = backend.asarray(X), backend.asarray(y), backend.asarray(y)
    calls = []
    real = _backend.to_numpy
    monkeypatch.setattr(_backend, "to_numpy", lambda a: calls.append(1) or real(a))
    DataLoader(Xb, yb)  # float X, int labels: one host transfer for the one check
    assert len(calls) == 1
    DataLoader(Xb, yb, validate=False)
    DataLoader(ib, yb)  # integers are always finite: nothing to check
    assert len(calls) == 1


def test_mixed_backends_and_devices_rejected():
    strict = pytest.importorskip("array_api_strict")
    X, y = _host_data(n=6)
    with pytest.raises(TypeError, match="different backends"):
        DataLoader(X, _backend.asarray(y, strict))
    with pytest.raises(ValueError, match="device"):
        DataLoader(
            _backend.asarray(X, strict),
            _backend.asarray(y, strict, device=strict.Device("device1")),
        )


def test_repr_mentions_backend():
    X, y = _host_data(n=6)
    assert "numpy" in repr(DataLoader(X, y, batch_size=2))


# ----------------------------------------------------------------------------- split


def _ids(n):
    X = np.arange(n, dtype=np.float64).reshape(n, 1) * np.ones((1, 2))
    y = np.arange(n, dtype=np.int64) * 10
    return X, y


def test_split_is_a_deterministic_partition():
    X, y = _ids(50)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.2, seed=3)
    assert Xtr.shape == (40, 2) and Xte.shape == (10, 2)
    ids = np.concatenate([Xtr[:, 0], Xte[:, 0]]).astype(int)
    np.testing.assert_array_equal(np.sort(ids), np.arange(50))
    np.testing.assert_array_equal(ytr, Xtr[:, 0].astype(int) * 10)  # rows stay paired
    np.testing.assert_array_equal(yte, Xte[:, 0].astype(int) * 10)
    again = train_test_split(X, y, test_size=0.2, seed=3)
    for a, b in zip((Xtr, Xte, ytr, yte), again, strict=True):
        np.testing.assert_array_equal(a, b)
    other = train_test_split(X, y, test_size=0.2, seed=4)
    assert not np.array_equal(np.sort(other[1][:, 0]), np.sort(Xte[:, 0]))


def test_split_sizes():
    X, y = _ids(10)
    assert train_test_split(X, y, test_size=0.25)[1].shape[0] == 3  # ceil(2.5), as sklearn
    assert train_test_split(X, y, test_size=4)[1].shape[0] == 4
    Xtr, Xte = train_test_split(X, test_size=0.5)
    assert Xtr.shape == Xte.shape == (5, 2)
    for bad in (0.0, 1.0, 0, 10, -0.1):
        with pytest.raises(ValueError, match="test_size|both need"):
            train_test_split(X, y, test_size=bad)
    with pytest.raises(ValueError, match="samples"):
        train_test_split(X, y[:9])


def test_stratified_split_keeps_proportions():
    y = np.repeat(np.array([0, 1, 2]), [50, 30, 20])
    X = np.arange(100, dtype=np.float64).reshape(100, 1)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.2, seed=0, stratify=True)
    np.testing.assert_array_equal(np.bincount(yte), [10, 6, 4])
    np.testing.assert_array_equal(np.bincount(ytr), [40, 24, 16])
    np.testing.assert_array_equal(y[Xte[:, 0].astype(int)], yte)
    # Stratifying by an explicit label array gives the same split.
    explicit = train_test_split(X, y, test_size=0.2, seed=0, stratify=y)
    np.testing.assert_array_equal(explicit[1], Xte)


def test_stratified_split_rounding_and_small_classes():
    y = np.repeat(np.array([0, 1, 2]), [7, 7, 2])
    X = np.zeros((16, 1))
    _, _, ytr, yte = train_test_split(X, y, test_size=0.25, seed=1, stratify=True)
    assert len(yte) == 4
    counts = np.bincount(yte, minlength=3)
    assert counts.sum() == 4
    assert (counts >= 1).all() and (np.bincount(ytr, minlength=3) >= 1).all()
    with pytest.raises(ValueError, match="at least 2 per class"):
        train_test_split(np.zeros((5, 1)), np.array([0, 0, 1, 1, 2]), stratify=True)
    with pytest.raises(ValueError, match="needs y"):
        train_test_split(np.zeros((5, 1)), stratify=True)


def test_stratified_split_error_prints_plain_numbers():
    X = np.zeros((5, 1))
    y = np.array([3, 3, 1634, 3, 3], dtype=np.int64)
    with pytest.raises(ValueError, match=r"class 1634 has only 1 sample") as err:
        train_test_split(X, y, stratify=True)
    assert "np.int64" not in str(err.value)


def test_split_on_backend(backend):
    Xh, yh = _ids(30)
    out = train_test_split(backend.asarray(Xh), backend.asarray(yh), test_size=0.3, seed=2,
                           stratify=None)
    host = [backend.to_numpy(a) for a in out]
    for a, shape in zip(out, [(21, 2), (9, 2), (21,), (9,)], strict=True):
        backend.check(a, shape=shape)
    np.testing.assert_array_equal(host[2], host[0][:, 0].astype(int) * 10)
    ids = np.concatenate([host[0][:, 0], host[1][:, 0]]).astype(int)
    np.testing.assert_array_equal(np.sort(ids), np.arange(30))
    # The order is drawn on the host: the permutation of default_rng(2) decides it.
    np.testing.assert_array_equal(host[1][:, 0], np.random.default_rng(2).permutation(30)[:9])


# ----------------------------------------------------------------------------- scalers


def _scaler_data():
    rng = np.random.default_rng(5)
    X = rng.standard_normal((50, 4)) * np.array([1.0, 10.0, 0.01, 1.0]) + np.array([0.0, 5.0, -3.0, 0.0])
    X[:, 3] = 0.1  # a constant feature: its mean is not exactly representable
    return X


def test_standard_scaler_on_backend(backend):
    X = _scaler_data()
    Xb = backend.asarray(X, dtype="float64")
    sc = StandardScaler()
    Z = sc.fit_transform(Xb)
    backend.check(Z, dtype="float64", shape=X.shape)
    for stat in (sc.mean_, sc.scale_, sc.var_):
        backend.check(stat, dtype="float64", shape=(4,))
    # Oracle: NumPy's own mean / std (ddof=0) on the host.
    np.testing.assert_allclose(backend.to_numpy(sc.mean_), X.mean(axis=0), rtol=F64_TOL, atol=F64_TOL)
    std = X.std(axis=0)
    np.testing.assert_allclose(backend.to_numpy(sc.scale_)[:3], std[:3], rtol=F64_TOL)
    assert backend.to_numpy(sc.scale_)[3] == 1.0  # zero variance -> scale 1, exactly
    assert backend.to_numpy(sc.var_)[3] == 0.0
    Zh = backend.to_numpy(Z)
    np.testing.assert_allclose(Zh[:, :3], (X[:, :3] - X[:, :3].mean(0)) / std[:3], rtol=1e-10, atol=F64_TOL)
    assert (Zh[:, 3] == 0.0).all()
    back = sc.inverse_transform(Z)
    backend.check(back, dtype="float64", shape=X.shape)
    np.testing.assert_allclose(backend.to_numpy(back), X, rtol=F64_TOL, atol=F64_TOL)
    np.testing.assert_array_equal(backend.to_numpy(Xb), X)  # the input was not modified


def test_scaler_of_integer_pixels_has_one_dtype_on_every_backend(backend):
    pixels = np.array([[0, 16, 3], [8, 16, 5], [16, 0, 7]], dtype=np.int64)
    want = "float64" if backend.supports_float64 else "float32"
    for scaler in (StandardScaler(), MinMaxScaler()):
        Z = scaler.fit_transform(backend.asarray(pixels))
        backend.check(Z, dtype=want, shape=pixels.shape)
        ref = type(scaler)().fit_transform(pixels.astype(np.float64))
        np.testing.assert_allclose(backend.to_numpy(Z), ref, rtol=1e-6 if want == "float32" else 1e-15)


def test_scaler_fitted_on_host_transforms_backend_float32(backend):
    X = _scaler_data()
    sc = StandardScaler().fit(X)
    assert isinstance(sc.mean_, np.ndarray)
    Z = sc.transform(backend.asarray(X, dtype="float32"))
    backend.check(Z, dtype="float32", shape=X.shape)
    std = X.std(axis=0)
    std[3] = 1.0  # the constant feature (its float64 std may be a rounding residue, not 0)
    expected = (X - X.mean(0)) / std
    expected[:, 3] = 0.0
    tol = 4 * EPS32 * (np.abs(X).max(0) + np.abs(X.mean(0))) / std
    assert (np.abs(backend.to_numpy(Z) - expected) <= tol).all()
    back = sc.inverse_transform(Z)
    backend.check(back, dtype="float32")
    np.testing.assert_allclose(backend.to_numpy(back), X, atol=F32_ROUNDTRIP_TOL)


def test_scaler_errors_and_options():
    X = _scaler_data()
    with pytest.raises(RuntimeError, match="not fitted"):
        StandardScaler().transform(X)
    sc = StandardScaler().fit(X)
    with pytest.raises(ValueError, match="fitted on"):
        sc.transform(X[:, :3])
    with pytest.raises(ValueError, match="no samples"):
        StandardScaler().fit(X[:0])
    only_mean = StandardScaler(with_std=False).fit_transform(X)
    np.testing.assert_allclose(only_mean, X - X.mean(0), atol=F64_TOL)
    ints = StandardScaler().fit_transform(np.array([[0, 2], [2, 2]]))
    assert ints.dtype == np.float64
    np.testing.assert_array_equal(ints, [[-1.0, 0.0], [1.0, 0.0]])
    restored = StandardScaler()
    restored.load_state_dict(sc.state_dict())
    np.testing.assert_array_equal(restored.transform(X), sc.transform(X))


def test_minmax_scaler_on_backend(backend):
    X = _scaler_data()
    sc = MinMaxScaler(feature_range=(-1.0, 1.0))
    Z = sc.fit_transform(backend.asarray(X, dtype="float64"))
    backend.check(Z, dtype="float64", shape=X.shape)
    Zh = backend.to_numpy(Z)
    lo, hi = X.min(0), X.max(0)
    np.testing.assert_allclose(Zh[:, :3], 2 * (X[:, :3] - lo[:3]) / (hi[:3] - lo[:3]) - 1, atol=F64_TOL)
    assert (Zh[:, 3] == -1.0).all()  # constant feature -> low end of the range
    np.testing.assert_allclose(backend.to_numpy(sc.inverse_transform(Z)), X, atol=F64_TOL)
    with pytest.raises(ValueError, match="low < high"):
        MinMaxScaler((1.0, 0.0))


# ----------------------------------------------------------------------------- one_hot


def test_one_hot_on_backend(backend):
    y = np.array([2, 0, 1, 2, 4], dtype=np.int64)
    out = one_hot(backend.asarray(y), 5)
    backend.check(out, dtype="float32", shape=(5, 5))
    np.testing.assert_array_equal(backend.to_numpy(out), np.eye(5, dtype=np.float32)[y])
    with pytest.raises(ValueError, match=r"0 \.\. 3, got 4 at position 4"):
        one_hot(backend.asarray(y), 4)


def test_one_hot_float64_with_inferred_classes(backend):
    y = np.array([2, 0, 1, 2, 4], dtype=np.int64)
    inferred = one_hot(backend.asarray(y), dtype=backend.dtype("float64"))
    backend.check(inferred, dtype="float64", shape=(5, 5))
    np.testing.assert_array_equal(backend.to_numpy(inferred), np.eye(5)[y])


def test_one_hot_errors():
    with pytest.raises(ValueError, match="got -1 at position 1"):
        one_hot(np.array([0, -1]), 3)
    with pytest.raises(TypeError, match="integer class labels"):
        one_hot(np.array([0.0, 1.0]), 2)
    with pytest.raises(ValueError, match=r"shape \(n,\)"):
        one_hot(np.array([[0], [1]]), 2)
    with pytest.raises(ValueError, match="num_classes"):
        one_hot(np.array([0, 1]), 0)
    # validate=False skips the host check; the caller vouches for the range.
    np.testing.assert_array_equal(one_hot(np.array([1, 0]), 2, validate=False), [[0, 1], [1, 0]])


def test_csv_string_labels_are_classes_in_sorted_order(tmp_path):
    p = tmp_path / "flowers.csv"
    p.write_text("a,b,species\n1,2,rose\n3,4,daisy\n5,6,tulip\n7,8,rose\n")
    ds = xpnet.data.load_file(p)
    assert ds.task == "classification" and ds.num_classes == 3
    assert ds.target_names == ("daisy", "rose", "tulip")  # as sklearn's LabelEncoder
    assert ds.y.tolist() == [1, 0, 2, 1] and ds.X.tolist() == [[1, 2], [3, 4], [5, 6], [7, 8]]
    with pytest.raises(ValueError, match="holds text such as 'rose'; regression needs numbers"):
        xpnet.data.load_file(p, task="regression")
    # A text cell among the features is still an error naming the line and column.
    (tmp_path / "bad.csv").write_text("a,b,y\n1,2,rose\n3,x,daisy\n")
    with pytest.raises(ValueError, match=r"line 3, column 2 \('b'\): cannot read 'x'"):
        xpnet.data.load_file(tmp_path / "bad.csv")


def test_digits_read_without_importing_sklearn_equals_load_digits():
    """The digits table is read straight from scikit-learn's data file (no ~0.9 s import
    of sklearn.datasets); it must equal what load_digits returns."""
    import subprocess
    import sys

    skd = pytest.importorskip("sklearn.datasets")
    from xpnet.data import load_dataset

    ds = load_dataset("digits")
    bunch = skd.load_digits()
    np.testing.assert_array_equal(np.asarray(ds.X, dtype=np.float64).reshape(len(bunch.data), -1), bunch.data)
    np.testing.assert_array_equal(np.asarray(ds.y), bunch.target)
    code = "import sys, xpnet.data as d; d.load_dataset('digits'); print('sklearn' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"

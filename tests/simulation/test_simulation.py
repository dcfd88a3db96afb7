"""Tests of mlimpute.simulation: the seed's experiments as a simulation study.

A tiny study (3 replications of each experiment, m = 2, 3 iterations) runs the whole
machinery: files, resumption, settings checks, parallel workers, summaries, acceptance
checks, markdown and figures. The statistics themselves are judged by the full study
(docs/simulation.md); here the arithmetic of the summary is checked on made-up records.
"""

from __future__ import annotations

import inspect
import json

import matplotlib
import numpy as np
import pandas as pd
import pytest

matplotlib.use("Agg")

import mlimpute  # noqa: E402,F401  (registers the .mi accessor)
from mlimpute import simulation as sim  # noqa: E402
from mlimpute.datasets import IMPUTATION_FORMULAS  # noqa: E402
from mlimpute.errors import SpecificationError  # noqa: E402

TINY = sim.StudyConfig(m={1: 2, 2: 2, 3: 2}, iterations=3)
METHODS = sim.available_methods()  # with "defaults" once impute() takes cluster=


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    out = tmp_path_factory.mktemp("study")
    info = sim.run_study(out, experiments=(1, 2, 3), reps=3, jobs=1, config=TINY, progress=False)
    return out, info


def test_files_one_per_replication(study):
    out, info = study
    assert info["done"] == 9 and info["skipped"] == 0
    files = sorted(p.relative_to(out).as_posix() for p in out.glob("*/*.json"))
    assert files == [f"experiment{e}/replication{r:04d}.json" for e in (1, 2, 3) for r in range(3)]
    rec = json.loads((out / "experiment2/replication0001.json").read_text())
    assert rec["settings"] == TINY.settings(2)
    assert set(rec["results"]) == set(TINY.methods)
    assert rec["truth"]["relation"] == 0.8
    ml = rec["results"]["multilevel"]
    assert "error" not in ml and ml["seconds"]["impute"] > 0
    assert {"mean(grade)", "mean(relation)"} <= set(ml["params"])


def test_rerun_skips_and_extends(study, tmp_path):
    out, _ = study
    again = sim.run_study(out, experiments=(1,), reps=3, config=TINY, progress=False)
    assert again == {**again, "done": 0, "skipped": 3}
    # a copy extended by one replication runs only that one
    copy = tmp_path / "copy"
    (copy / "experiment1").mkdir(parents=True)
    for p in (out / "experiment1").glob("*.json"):
        (copy / "experiment1" / p.name).write_text(p.read_text())
    more = sim.run_study(copy, experiments=(1,), reps=4, config=TINY, progress=False)
    assert (more["done"], more["skipped"]) == (1, 3)


def test_other_settings_are_refused(study):
    out, _ = study
    other = sim.StudyConfig(m={1: 3}, iterations=3)
    with pytest.raises(SpecificationError, match="other output directory|another output"):
        sim.run_study(out, experiments=(1,), reps=1, config=other, progress=False)


def test_replication_is_deterministic_and_independent_of_methods():
    a = sim.run_replication(1, 5, TINY)
    b = sim.run_replication(
        1, 5, sim.StudyConfig(m={1: 2}, iterations=3, methods=("complete", "multilevel"))
    )
    for method in ("complete", "multilevel"):
        assert a["results"][method]["params"] == b["results"][method]["params"]
    other = sim.run_replication(1, 6, TINY)
    assert (
        other["results"]["complete"]["params"]["skill"]["estimate"]
        != a["results"]["complete"]["params"]["skill"]["estimate"]
    )


def test_process_pool_gives_the_same_files(study, tmp_path):
    out, _ = study
    sim.run_study(tmp_path, experiments=(1, 3), reps=2, jobs=2, config=TINY, progress=False)
    for e in (1, 3):
        for r in range(2):
            name = f"experiment{e}/replication{r:04d}.json"
            got = json.loads((tmp_path / name).read_text())["results"]
            want = json.loads((out / name).read_text())["results"]
            for method in want:
                assert got[method]["params"] == want[method]["params"], (name, method)


def test_complete_method_is_the_complete_data_fit(study):
    out, _ = study
    rec = sim.load_records(out)
    com = rec[rec["method"] == "complete"]
    assert np.allclose(com["estimate"], com["complete"])
    fixed = com[com["kind"] == "fixed"]
    assert (fixed["ci_low"] < fixed["estimate"]).all()


def test_summary_of_the_tiny_study(study):
    out, _ = study
    s = sim.summarise(out)
    assert list(s["method"].unique()) == list(METHODS)
    assert (s["n"] == 3).all() and (s["failed"] == 0).all()
    e3 = s[(s["experiment"] == 3) & (s["method"] == "multilevel")]
    assert list(e3["parameter"]) == [
        "Intercept",
        "skill",
        "gender",
        "relation",
        "skill:gender",
        "var(Intercept|class)",
        "var(gender|class)",
        "var(Residual)",
    ]
    assert list(e3["label"]) == ["B0", "B1", "", "", "B3", "D0", "D1", "S"]
    assert set(s.loc[s["kind"] == "mean", "parameter"]) == {"mean(grade)", "mean(relation)"}
    com = s[s["method"] == "complete"]
    assert np.allclose(com["diff_complete"], 0.0)
    assert s.loc[s["kind"] == "variance", "coverage"].isna().all()
    assert s.loc[s["method"] == "multilevel", "impute_s"].gt(0).all()
    t = sim.timings(out)
    assert set(t.index.get_level_values("method")) == {*METHODS, "all"}
    assert np.isclose(t.loc[(3, "all"), "total_s"], t.loc[3].drop("all")["total_s"].sum())


def _fake_records() -> pd.DataFrame:
    est = np.array([0.8, 1.0, 1.4, 1.2])
    com = np.array([0.9, 1.0, 1.05, 1.0])
    rows = []
    for r in range(4):
        rows.append(
            {
                "experiment": 1,
                "replication": r,
                "method": "multilevel",
                "parameter": "skill",
                "kind": "fixed",
                "estimate": est[r],
                "se": 0.2,
                "ci_low": est[r] - 0.3,
                "ci_high": est[r] + 0.3,
                "true": 1.0,
                "complete": com[r],
                "impute_s": 0.5,
                "fit_s": 0.1,
                "singular": r % 2,
                "convergence_warning": r == 0,
                "error": None,
            }
        )
    rows.append(
        {
            "experiment": 1,
            "replication": 4,
            "method": "multilevel",
            "parameter": "",
            "error": "PoolingError: boom",
        }
    )
    return pd.DataFrame(rows, columns=rows[0].keys())


def test_summary_arithmetic():
    s = sim.summarise(_fake_records()).iloc[0]
    est, com = np.array([0.8, 1.0, 1.4, 1.2]), np.array([0.9, 1.0, 1.05, 1.0])
    assert s["n"] == 4 and s["failed"] == 1
    assert np.isclose(s["mean"], 1.1) and np.isclose(s["bias"], 0.1)
    assert np.isclose(s["rel_bias"], 0.1)
    assert np.isclose(s["diff_complete"], np.mean(est - com))
    assert np.isclose(s["emp_sd"], est.std(ddof=1))
    assert np.isclose(s["rmse"], np.sqrt(np.mean((est - 1.0) ** 2)))
    assert np.isclose(s["mcse_bias"], est.std(ddof=1) / 2)
    assert np.isclose(s["mcse_diff"], (est - com).std(ddof=1) / 2)
    assert np.isclose(s["coverage"], 0.75)  # 1.4 +- 0.3 misses 1
    assert np.isclose(s["cover_complete"], 0.75)  # 1.4 +- 0.3 misses 1.05
    assert np.isclose(s["ci_width"], 0.6) and np.isclose(s["mean_se"], 0.2)
    assert np.isclose(s["conv_warn"], 0.25) and np.isclose(s["singular"], 0.5)
    assert s["label"] == "B1"


def test_cluster_robust_mean_on_balanced_data():
    rng = np.random.default_rng(1)
    g = np.repeat(np.arange(6), 4)
    y = rng.normal(size=6)[g] + rng.normal(size=g.size)
    mean, var, J = sim._cluster_mean(y, g)
    cm = pd.Series(y).groupby(g).mean()
    assert J == 6 and np.isclose(mean, y.mean())
    assert np.isclose(var, cm.var(ddof=1) / 6)


def test_single_level_formulas():
    got = sim.single_level_formulas(IMPUTATION_FORMULAS[2])
    assert got == {"relation": "~ gender + grade + skill", "grade": "~ gender + relation + skill"}
    assert sim.single_level_formulas(IMPUTATION_FORMULAS[3]) == {
        "grade": "~ skill * gender + relation"
    }


def test_defaults_seam(monkeypatch):
    has = "cluster" in inspect.signature(mlimpute.impute).parameters
    assert ("defaults" in sim.available_methods()) == has
    calls = {}
    real = sim.study.impute

    def impute_with_defaults(df, formulas=None, *, cluster=None, **kwargs):
        calls["cluster"] = cluster
        return real(df, formulas or IMPUTATION_FORMULAS[1], **kwargs)

    monkeypatch.setattr(sim.study, "impute", impute_with_defaults)  # the runner's impute
    assert sim.available_methods()[-1] == "defaults"
    cfg = sim.StudyConfig(m={1: 2}, iterations=3, methods=("complete", "defaults"))
    rec = sim.run_replication(1, 0, cfg)
    assert calls["cluster"] == "class"
    assert "error" not in rec["results"]["defaults"]


def test_unknown_or_unavailable_methods_are_refused():
    with pytest.raises(SpecificationError, match="unknown methods"):
        sim.StudyConfig(methods=("complete", "magic"))
    with pytest.raises(SpecificationError, match="m must be at least 2"):
        sim.StudyConfig(m={1: 1})


def test_single_data_set_and_acceptance(study):
    out, _ = study
    single = sim.single_data_set(3, config=TINY)
    per = single.per_imputation
    assert per.shape[0] == 2
    assert list(single.complete.index) == list(single.complete_cases.index) == list(per.columns)
    assert {
        "skill:gender",
        "var(Intercept|class)",
        "var(gender|class)",
        "cov(Intercept,gender|class)",
        "var(Residual)",
    } <= set(per.columns)
    # per-imputation variance components average to the pooled ones
    vc = single.variance_components["estimate"]
    for name in ("var(Intercept|class)", "cov(Intercept,gender|class)", "var(Residual)"):
        assert np.isclose(per[name].mean(), vc[name])
    assert np.allclose(per[single.summary.index].mean(), single.summary["estimate"])
    checks = sim.acceptance(sim.summarise(out), single)
    assert set(checks.columns) == {"experiment", "check", "parameter", "value", "target", "passed"}
    kinds = set(checks["check"])
    assert {
        "multilevel: relative bias",
        "multilevel: 95 % CI coverage",
        "single-level: D0 too low",
        "complete cases: mean biased",
        "multilevel: mean unbiased",
    } <= kinds
    assert any(c.startswith("one data set, m = 2") for c in kinds)
    assert checks["passed"].map(type).eq(bool).all()


def test_markdown_between_markers(study, tmp_path):
    out, _ = study
    s = sim.summarise(out)
    text = sim.to_markdown(s, checks=sim.acceptance(s), times=sim.timings(out))
    assert "### Experiment 3" in text and "### Acceptance checks" in text
    assert "D0 `var(Intercept\\|class)`" in text  # pipes escaped inside tables
    doc = tmp_path / "doc.md"
    doc.write_text(
        "# Title\n\nprose\n\n<!-- simulation-results:start -->\nold\n"
        "<!-- simulation-results:end -->\n\nafter\n"
    )
    sim.write_markdown(doc, text)
    new = doc.read_text()
    assert new.startswith("# Title\n\nprose\n") and new.endswith("\n\nafter\n")
    assert "old" not in new and "### Experiment 1" in new
    fresh = sim.write_markdown(tmp_path / "fresh.md", "hello\n").read_text()
    assert fresh == "<!-- simulation-results:start -->\nhello\n<!-- simulation-results:end -->\n"


def test_figures(study, tmp_path):
    out, _ = study
    single = sim.single_data_set(3, config=TINY)
    paths = sim.make_figures(out, tmp_path, single=single)
    assert [p.name for p in paths] == [
        "experiment1_replications.png",
        "experiment2_replications.png",
        "experiment3_replications.png",
        "experiment3_single_data_set.png",
    ]
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in paths)
    fig = sim.plot_replications(out, 2)
    assert len([ax for ax in fig.axes if ax.get_visible()]) == 8  # 4 fixed, D0, S, 2 means
    assert len(sim.plot_single_data_set(single).axes) == 4


def test_command_line(study, tmp_path, capsys):
    out, _ = study
    code = sim.main(
        [
            "--out",
            str(out),
            "--experiments",
            "1",
            "2",
            "--plots",
            "--figures",
            str(tmp_path / "fig"),
            "--markdown",
            str(tmp_path / "sim.md"),
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "### Experiment 1" in printed and "### Experiment 3" not in printed
    assert (out / "summary.csv").exists() and (tmp_path / "sim.md").exists()
    assert sorted(p.name for p in (tmp_path / "fig").iterdir()) == [
        "experiment1_replications.png",
        "experiment2_replications.png",
    ]
    assert sim.main(["--out", str(tmp_path / "empty")]) == 1
    assert (
        sim.main(["--out", str(out), "--reps", "1", "--m", "4", "--iterations", "3", "--quiet"])
        == 2
    )
    assert "another output directory" in capsys.readouterr().err


def test_provenance_and_stored_config(study):
    out, _ = study
    cfg = sim.stored_config(out, 3)
    assert (cfg.m_for(3), cfg.iterations, cfg.seed) == (2, 3, sim.DEFAULT_SEED)
    text = sim.provenance(out)
    assert text.startswith("**Results of experiment 1: 3 replications, m = 2;")
    assert "Run in 1 part(s): 9 replications" in text and "mlimpute" in text
    with pytest.raises(SpecificationError, match="no results of experiment 3"):
        sim.stored_config(out / "nowhere", 3)


def test_command_line_reps_per_experiment(tmp_path, capsys):
    out = tmp_path / "r"
    argv = [
        "--out",
        str(out),
        "--experiments",
        "1",
        "2",
        "--reps",
        "1",
        "2=2",
        "--m",
        "2",
        "--iterations",
        "3",
        "--methods",
        "complete",
        "multilevel",
        "--quiet",
    ]
    assert sim.main(argv) == 0
    assert "ran 3 replications (0 already on disk)" in capsys.readouterr().out
    assert len(list((out / "experiment1").glob("*.json"))) == 1
    assert len(list((out / "experiment2").glob("*.json"))) == 2
    assert sim.main(argv[:6] + ["3=x"] + argv[7:]) == 2
    assert "--reps takes N or E=N" in capsys.readouterr().err


# -- missingness="ampute": the mechanisms through mlimpute.ampute ---------------------------
def test_default_missingness_keeps_the_stored_settings():
    assert "missingness" not in TINY.settings(1)  # files of the default study still match
    cfg = sim.StudyConfig(m={1: 2}, iterations=2, missingness="ampute")
    assert cfg.settings(1)["missingness"] == "ampute"
    with pytest.raises(SpecificationError, match="missingness"):
        sim.StudyConfig(missingness="random")


@pytest.mark.parametrize("missingness", ["classroom", "ampute"])
def test_single_data_set_is_the_replication_the_study_ran(missingness):
    # the same data (deleted as config.missingness says) and imputations as
    # run_replication: the same multilevel estimates of the study's analysis model
    from mlimpute.datasets import ANALYSIS_FORMULAS

    cfg = sim.StudyConfig(m={3: 2}, iterations=3, methods=("multilevel",), missingness=missingness)
    rec = sim.run_replication(3, 1, cfg)["results"]["multilevel"]["params"]
    single = sim.single_data_set(3, replication=1, config=cfg, formula=ANALYSIS_FORMULAS[3])
    for term, row in single.summary.iterrows():
        for col in ("estimate", "se", "df"):
            assert row[col] == pytest.approx(rec[term][col], rel=1e-12, abs=1e-12), (term, col)
    for name, est in single.variance_components["estimate"].items():
        if not str(name).startswith("ICC"):
            assert est == pytest.approx(rec[str(name)]["estimate"], rel=1e-12, abs=1e-12)


def test_ampute_classroom_mechanisms():
    from mlimpute.datasets import classroom
    from mlimpute.simulation.study import ampute_classroom

    seed = np.random.SeedSequence(7)
    d = ampute_classroom(classroom(2, n_classes=500, rng=1), seed)  # 10 000 children
    inc, boys = d.incomplete, d.incomplete["gender"] == 0
    for col in ("relation", "grade"):
        miss = inc[col].isna()
        # binomial SEs: sqrt(.6·.4/5000) = 0.007 for boys, 0.006 for girls, 0.005 overall;
        # 4 SE bounds
        assert abs(miss[boys].mean() - 0.6) < 0.028
        assert abs(miss[~boys].mean() - 0.2) < 0.024
        assert abs(miss.mean() - 0.4) < 0.02
    observed = inc["grade"].notna()
    assert (inc.loc[observed, "grade"] == d.complete.loc[observed, "grade"]).all()
    again = ampute_classroom(classroom(2, n_classes=500, rng=1), np.random.SeedSequence(7))
    pd.testing.assert_frame_equal(inc, again.incomplete)
    one = ampute_classroom(classroom(1, n_classes=500, rng=1), seed).incomplete
    assert abs(one["grade"].isna().mean() - 0.4) < 0.02  # MCAR, 4 binomial SEs


def test_replication_with_ampute_records_its_setting(tmp_path):
    cfg = sim.StudyConfig(m={1: 2}, iterations=2, methods=("complete_cases",), missingness="ampute")
    rec = sim.run_replication(1, 0, cfg)
    plain = sim.run_replication(
        1, 0, sim.StudyConfig(m={1: 2}, iterations=2, methods=("complete_cases",))
    )
    assert rec["settings"]["missingness"] == "ampute"
    assert rec["truth"] == plain["truth"]  # the same data, deleted otherwise
    a = rec["results"]["complete_cases"]["params"]["skill"]["estimate"]
    b = plain["results"]["complete_cases"]["params"]["skill"]["estimate"]
    assert a != b

"""Stage fingerprints: a re-run with other settings never reuses results made with the old ones.

The stages are replaced by instant fakes (same names, typed results, outputs on disk), so
these tests check the bookkeeping, not the training."""

from pathlib import Path

import pytest

from sftvsrl.study import pipeline
from sftvsrl.study.config import load_study_config
from sftvsrl.study.fingerprints import StudyChanged
from sftvsrl.study.results import (
    CurvesResult,
    DataResult,
    InitResult,
    PretrainResult,
    RLResult,
    SFTResult,
    Validation,
)
from sftvsrl.study.run import run_study

SMOKE = Path(__file__).resolve().parents[2] / "configs" / "study" / "smoke.yaml"
T = "GeneralPoints-L"
ALL = ["pretrain", f"{T}.data", f"{T}.init", f"{T}.rl", f"{T}.sft", f"{T}.eval"]


def _mark(path: Path, text: str = "x") -> str:
    path.mkdir(parents=True, exist_ok=True)
    (path / "made").write_text(text)
    return str(path)


@pytest.fixture
def fake_stages(monkeypatch):
    S = pipeline.Study

    def pretrain(self):
        return PretrainResult(_mark(self.out / "base_model", str(self.cfg.seed)), "ck", 1.0, 10, {})

    def task_data(self, name, spec):
        d = _mark(self.out / name / "data")
        return DataResult(d, d, d)

    def init_sft(self, name, spec, base, data):
        ck = _mark(self.out / name / "stage1_init")
        return InitResult(ck, 10, 2.0, [Validation(10, ck, 0.5, 2.0)], False, "val_success")

    def stage2_rl(self, name, spec, init):
        return RLResult(_mark(self.out / name / "stage2_rl"), "f", 3.0)

    def stage2_sft(self, name, init, rl, data):
        return SFTResult(_mark(self.out / name / "stage2_sft"), "f", 4, 1.0, 3.0)

    def evaluate_curves(self, name, spec, init, base=None):
        _mark(self.out / name / "evals" / "SFT", str(self.cfg.eval.episodes))
        points = [
            dict(
                task="GeneralPoints",
                variant="L",
                method=m,
                step=s,
                gflops=g,
                split=sp,
                success_rate=0.5,
                ci_low=0.2,
                ci_high=0.8,
                episodes=self.cfg.eval.episodes,
            )
            for m in ("SFT", "RL")
            for s, g in ((0, 2.0), (1, 3.0))
            for sp in ("id", "ood")
        ]
        return CurvesResult(points)

    for fn in (pretrain, task_data, init_sft, stage2_rl, stage2_sft, evaluate_curves):
        monkeypatch.setattr(S, fn.__name__, fn)


def run(out, *overrides, rerun_changed=False, **kw):
    ran = []
    cfg = load_study_config(SMOKE, [f"tasks=[{T}]", *overrides])  # the fake stages are one task's
    report = run_study(cfg, out, after_stage=ran.append, rerun_changed=rerun_changed, **kw)
    return report, ran


def test_a_changed_seed_stops_with_one_line_naming_it(tmp_path, fake_stages):
    run(tmp_path)
    before = (tmp_path / "study_config.yaml").read_text()
    with pytest.raises(StudyChanged) as err:
        run(tmp_path, "seed=1")
    msg = str(err.value)
    assert "\n" not in msg and "seed 0 -> 1" in msg and "--rerun-changed" in msg and "--out" in msg
    assert (tmp_path / "study_config.yaml").read_text() == before  # nothing rewritten


def test_eval_episodes_names_only_the_evaluation_stages(tmp_path, fake_stages):
    run(tmp_path)
    with pytest.raises(StudyChanged) as err:
        run(tmp_path, "eval.episodes=40")
    msg = str(err.value)
    assert "eval.episodes 8 -> 40 (GeneralPoints-L.eval)" in msg
    for other in ("pretrain", ".data", ".init", ".rl,", ".sft"):
        assert other not in msg


def test_rerun_changed_redoes_the_changed_stage_and_those_after_it(tmp_path, fake_stages, capsys):
    run(tmp_path)
    old_eval = tmp_path / T / "evals" / "SFT"
    report, ran = run(tmp_path, "eval.episodes=40", rerun_changed=True)
    text = report.read_text()
    assert "`pretrain`" in text and f"`{T}.init`" in text  # the report lists the reused stages
    assert (old_eval / "made").read_text() == "40"
    assert not list(old_eval.parent.glob("SFT.old-*"))  # old copy deleted once the study finished
    assert "episodes: 40" in (tmp_path / "study_config.yaml").read_text()

    _, ran = run(tmp_path, "seed=1", "eval.episodes=40", rerun_changed=True)
    assert ran == ALL and (tmp_path / "base_model" / "made").read_text() == "1"  # redone from stage 0
    assert not list(tmp_path.glob("base_model.old-*")) and not list((tmp_path / "stages").glob("*.old-*"))


def test_only_the_changed_stages_run_again(tmp_path, fake_stages, monkeypatch):
    run(tmp_path)
    redone = []
    orig = pipeline.StageRunner.run

    def spy(self, name, fn, fingerprint=None):
        if not self.done(name):
            redone.append(name)
        return orig(self, name, fn, fingerprint)

    monkeypatch.setattr(pipeline.StageRunner, "run", spy)
    run(tmp_path, "stage2.rl_updates=5", rerun_changed=True)
    assert redone == [f"{T}.rl", f"{T}.sft", f"{T}.eval"]  # the RL stage and those reading it


def test_settings_that_cannot_change_a_result_reuse_everything(tmp_path, fake_stages, monkeypatch, capsys):
    run(tmp_path)
    capsys.readouterr()
    redone = []
    orig = pipeline.StageRunner.run

    def spy(self, name, fn, fingerprint=None):
        if not self.done(name):
            redone.append(name)
        return orig(self, name, fn, fingerprint)

    monkeypatch.setattr(pipeline.StageRunner, "run", spy)
    run(
        tmp_path,
        "threads=2",
        "compile_rollouts=true",
        "stage2.rl.tensorboard=true",
        "init.sft.progress=false",
        "dist_timeout_min=5",
    )
    assert redone == []
    err = capsys.readouterr().err
    assert "every stage was reused" in err and "report.md" in err and "0.0 min" not in err


def test_the_study_may_not_set_owned_trainer_keys():
    from sftvsrl.config import ConfigError

    for override in ("init.sft.eval_every=3", "stage2.rl.save_every=2", "corpus.sft.log_every=5"):
        with pytest.raises(ConfigError, match="the study sets them itself"):
            load_study_config(SMOKE, [override])


def test_seeds_run_one_study_each_with_a_shared_stage_0(tmp_path, fake_stages):
    report, ran = run(tmp_path, "seeds=[0,1]", "corpus.seed=5")
    assert ran.count("pretrain") == 1 and ran.count(f"{T}.eval") == 2
    assert (tmp_path / "shared" / "stages" / "pretrain.json").is_file()
    assert not (tmp_path / "seed-0" / "stages" / "pretrain.json").exists()
    for seed in (0, 1):
        assert (tmp_path / f"seed-{seed}" / "curves.csv").is_file()
        assert (tmp_path / f"seed-{seed}" / "report.md").is_file()
    text = report.read_text()
    assert report == tmp_path / "report.md" and "over seeds" in text
    # 2 seeds x (6 of 12 episodes) pooled: 12 of 24, and RL - SFT 0 with Newcombe's interval
    assert "| GeneralPoints-L | ood | **pooled** | 50.0 [" in text and "+0.0 [" in text
    # a re-run reuses everything, the shared stage 0 included
    _, again = run(tmp_path, "seeds=[0,1]", "corpus.seed=5")
    assert (tmp_path / "shared" / "base_model" / "made").read_text() == "0"  # made once


def test_only_seed_runs_stage_0_and_that_seed_without_a_combined_report(tmp_path, fake_stages):
    report, ran = run(tmp_path, "seeds=[0,1]", "corpus.seed=5", only_seed=1)
    assert ran.count("pretrain") == 1 and ran.count(f"{T}.eval") == 1
    assert report == tmp_path / "seed-1" / "report.md" and not (tmp_path / "seed-0").exists()
    assert not (tmp_path / "report.md").exists()
    with pytest.raises(ValueError, match="not one of seeds"):
        run(tmp_path, "seeds=[0,1]", only_seed=4)
    with pytest.raises(ValueError, match="need the seeds option"):
        run(tmp_path, jobs=2)


def test_jobs_run_each_seed_in_a_process_of_its_own(tmp_path, fake_stages, monkeypatch):
    import subprocess

    launched = []

    class Done:  # a child process, run here (with the fake stages) as the command says
        returncode = 0

        def __init__(self, argv, **kw):
            launched.append((argv, kw["env"]["OMP_NUM_THREADS"]))
            if self.returncode == 0:
                cfg = load_study_config(argv[argv.index("--config") + 1], [argv[-1]])
                run_study(
                    cfg, argv[argv.index("--out") + 1], only_seed=int(argv[argv.index("--only-seed") + 1])
                )

        def poll(self):
            return 0

    monkeypatch.setattr(subprocess, "Popen", Done)
    report, ran = run(tmp_path, "seeds=[0,1]", "corpus.seed=5", "threads=2", jobs=2)
    assert ran == ["pretrain"]  # stage 0 ran in this process, before the seeds' processes started
    assert [a[a.index("--only-seed") + 1] for a, _ in launched] == ["0", "1"]
    assert all("threads=1" in a and t == "1" for a, t in launched)  # 2 threads shared by 2 jobs
    assert (tmp_path / "seeds_config.yaml").is_file() and "over seeds" in report.read_text()
    assert "threads: 1" in (tmp_path / "seed-1" / "study_config.yaml").read_text()  # as the child ran
    assert "Stages reused" not in (tmp_path / "seed-1" / "report.md").read_text()  # not redone after

    class Failed(Done):
        returncode = 3

    monkeypatch.setattr(subprocess, "Popen", Failed)
    from sftvsrl.errors import UserError

    with pytest.raises(UserError, match=r"seed 0 \(log: .*seed-0.log\), seed 1 .*failed"):
        run(tmp_path / "again", "seeds=[0,1]", "corpus.seed=5", jobs=2)


def test_seeds_without_a_fixed_corpus_seed_pretrain_per_seed(tmp_path, fake_stages):
    _, ran = run(tmp_path, "seeds=[2,3]")
    assert ran.count("pretrain") == 2 and not (tmp_path / "shared").exists()
    assert (tmp_path / "seed-3" / "base_model" / "made").read_text() == "3"


def test_new_keys_at_their_defaults_keep_old_fingerprints():
    from sftvsrl.study.fingerprints import flatten, settings_of

    default = load_study_config(SMOKE)
    flat = flatten(default.model_dump(mode="json"))
    assert "corpus.seed" not in settings_of("pretrain", flat) and "seed" in settings_of("pretrain", flat)
    fixed = flatten(load_study_config(SMOKE, ["corpus.seed=4"]).model_dump(mode="json"))
    assert settings_of("pretrain", fixed)["corpus.seed"] == 4 and "seed" not in settings_of("pretrain", fixed)
    assert "init.curve_episodes" not in settings_of("init", flat)
    assert "eval.kl_prompts" in settings_of("eval", flat)


def test_task_overrides_change_only_that_tasks_stages():
    both = ["tasks=[GeneralPoints-L,VIRL-L]"]
    plain = pipeline.Study(load_study_config(SMOKE, both), "unused")
    tuned = pipeline.Study(
        load_study_config(
            SMOKE, [*both, "task_overrides.VIRL-L.init.steps=7", "task_overrides.VIRL-L.eval.episodes=3"]
        ),
        "unused",
    )
    assert tuned.task_cfg["VIRL-L"].init.steps == 7 and tuned.task_cfg["VIRL-L"].eval.episodes == 3
    assert tuned.task_cfg[T].init.steps == plain.task_cfg[T].init.steps
    changed = {
        n for n in plain.fingerprints if plain.fingerprints[n]["hash"] != tuned.fingerprints[n]["hash"]
    }
    assert changed == {"VIRL-L.init", "VIRL-L.rl", "VIRL-L.sft", "VIRL-L.eval"}


@pytest.mark.parametrize(
    ("override", "words"),
    [
        ("task_overrides.VIRL-L.init.steps=3", "not in tasks"),
        (f"task_overrides.{T}.seed=3", "cannot differ by task"),
        (f"task_overrides.{T}.init.steps=-1", "task_overrides.GeneralPoints-L"),
        (f"task_overrides.{T}.stage2.rl.not_a_key=1", "not_a_key"),
    ],
)
def test_bad_task_overrides_fail_at_load_time(override, words):
    with pytest.raises(ValueError, match=words):
        load_study_config(SMOKE, [f"tasks=[{T}]", override])

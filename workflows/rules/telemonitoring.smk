# Pilot telemonitoring: demo cohort (vital signs as FHIR R4 bundles and long CSV per site) for
# config["sites"] hospitals, then the pilot run: FHIR ingest per hospital, PEWS vs the learned
# model on later-admitted patients, federated training without and with DP-SGD and their
# membership-inference audit, and stream scoring (metrics.json and plots).


rule telemonitoring_demo:
    output:
        directory("results/telemonitoring/demo"),
    log:
        "logs/telemonitoring/demo.log",
    conda:
        "../envs/secured_bio.yaml"
    params:
        sites=config["sites"],
        seed=config["seed"],
        extra=demo_params("telemonitoring"),
    shell:
        "secured-bio -v demo telemonitoring --sites {params.sites} --seed {params.seed} "
        "{params.extra} --out {output} 2> {log}"


rule telemonitoring_run:
    input:
        "results/telemonitoring/demo",
    output:
        metrics="results/telemonitoring/run/metrics.json",
        validation="results/telemonitoring/run/validation.json",
        roc=report(
            "results/telemonitoring/run/report/roc_pr.png",
            caption="../report/telemonitoring_roc_pr.rst",
            category="Telemonitoring",
        ),
        calibration=report(
            "results/telemonitoring/run/report/calibration.png",
            caption="../report/telemonitoring_calibration.rst",
            category="Telemonitoring",
        ),
        timelines=report(
            "results/telemonitoring/run/report/timelines.png",
            caption="../report/telemonitoring_timelines.rst",
            category="Telemonitoring",
        ),
        privacy_utility=report(
            "results/telemonitoring/run/report/privacy_utility.png",
            caption="../report/telemonitoring_privacy_utility.rst",
            category="Telemonitoring",
        ),
        curves=report(
            "results/telemonitoring/run/training_curves.png",
            caption="../report/federated_training_curves.rst",
            category="Telemonitoring",
        ),
        per_site=report(
            "results/telemonitoring/run/per_site.png",
            caption="../report/federated_per_site.rst",
            category="Telemonitoring",
        ),
        fairness=report(
            "results/telemonitoring/run/fairness.png",
            caption="../report/federated_fairness.rst",
            category="Telemonitoring",
        ),
    log:
        "logs/telemonitoring/run.log",
    conda:
        "../envs/secured_bio.yaml"
    params:
        out=subpath(output.metrics, parent=True),
        sites=config["sites"],
        engine=config["fl_engine"]["telemonitoring"],
    shell:
        "secured-bio -v pilots run telemonitoring --data {input} --sites {params.sites} "
        "--set engine={params.engine} --out {params.out} 2> {log}"

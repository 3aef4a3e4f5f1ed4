# Pilot tumor_classification: demo cohort (4D NIfTI series per subject and a label atlas),
# connectivity features computed by each site on its own scans, then the pilot run:
# centralized vs federated (Flower) training on the same split, per-site and subgroup
# fairness audit, CrypTen encrypted inference on a few held-out scans.


rule tumor_classification_demo:
    output:
        directory("results/tumor_classification/demo"),
    log:
        "logs/tumor_classification/demo.log",
    conda:
        "../envs/secured_bio.yaml"
    params:
        sites=config["sites"],
        seed=config["seed"],
        extra=demo_params("tumor_classification"),
    shell:
        "secured-bio -v demo tumor_classification --sites {params.sites} --seed {params.seed} "
        "{params.extra} --out {output} 2> {log}"


rule tumor_classification_features:
    input:
        "results/tumor_classification/demo",
    output:
        "results/tumor_classification/features/{site}/connectivity_features.tsv",
    log:
        "logs/tumor_classification/features_{site}.log",
    conda:
        "../envs/secured_bio.yaml"
    shell:
        "secured-bio -v imaging features --cohort {input} --site {wildcards.site} "
        "--out {output} 2> {log}"


rule tumor_classification_run:
    input:
        demo="results/tumor_classification/demo",
        features=expand(
            "results/tumor_classification/features/{site}/connectivity_features.tsv",
            site=SITES,
        ),
    output:
        metrics="results/tumor_classification/run/metrics.json",
        validation="results/tumor_classification/run/validation.json",
        curves=report(
            "results/tumor_classification/run/training_curves.png",
            caption="../report/federated_training_curves.rst",
            category="Tumour classification",
        ),
        per_site=report(
            "results/tumor_classification/run/per_site.png",
            caption="../report/federated_per_site.rst",
            category="Tumour classification",
        ),
        fairness=report(
            "results/tumor_classification/run/fairness.png",
            caption="../report/federated_fairness.rst",
            category="Tumour classification",
        ),
    log:
        "logs/tumor_classification/run.log",
    conda:
        "../envs/secured_bio.yaml"
    params:
        out=subpath(output.metrics, parent=True),
        features=lambda wildcards, input: os.path.dirname(os.path.dirname(input.features[0])),
        sites=config["sites"],
        engine=config["fl_engine"]["tumor_classification"],
        tls=str(
            config["fl_tls"] and config["fl_engine"]["tumor_classification"] == "deployment"
        ).lower(),
    shell:
        "secured-bio -v pilots run tumor_classification --data {input.demo} "
        "--sites {params.sites} --set features={params.features} "
        "--set engine={params.engine} --set tls={params.tls} --set node_auth={params.tls} "
        "--out {params.out} 2> {log}"

# Pilot tumor_classification: demo cohort (4D NIfTI series per subject and a label atlas) for config["sites"] sites,
# then the pilot run on it (metrics.json). Status: demo data only; the analysis rules of its
# issue are added here as they land.


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


rule tumor_classification_run:
    input:
        "results/tumor_classification/demo",
    output:
        metrics="results/tumor_classification/run/metrics.json",
        validation="results/tumor_classification/run/validation.json",
    log:
        "logs/tumor_classification/run.log",
    conda:
        "../envs/secured_bio.yaml"
    params:
        out=subpath(output.metrics, parent=True),
        sites=config["sites"],
    shell:
        "secured-bio -v pilots run tumor_classification --data {input} --sites {params.sites} "
        "--out {params.out} 2> {log}"

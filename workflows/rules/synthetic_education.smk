# Pilot synthetic_education: demo cohort (clinical table with quasi-identifiers and a sensitive column) for config["sites"] sites,
# then the pilot run on it (metrics.json). Status: demo data only; the analysis rules of its
# issue are added here as they land.


rule synthetic_education_demo:
    output:
        directory("results/synthetic_education/demo"),
    log:
        "logs/synthetic_education/demo.log",
    conda:
        "../envs/secured_bio.yaml"
    params:
        sites=config["sites"],
        seed=config["seed"],
        extra=demo_params("synthetic_education"),
    shell:
        "secured-bio -v demo synthetic_education --sites {params.sites} --seed {params.seed} "
        "{params.extra} --out {output} 2> {log}"


rule synthetic_education_run:
    input:
        "results/synthetic_education/demo",
    output:
        metrics="results/synthetic_education/run/metrics.json",
        validation="results/synthetic_education/run/validation.json",
    log:
        "logs/synthetic_education/run.log",
    conda:
        "../envs/secured_bio.yaml"
    params:
        out=subpath(output.metrics, parent=True),
        sites=config["sites"],
    shell:
        "secured-bio -v pilots run synthetic_education --data {input} --sites {params.sites} "
        "--out {params.out} 2> {log}"

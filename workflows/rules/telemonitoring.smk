# Pilot telemonitoring: demo cohort (vital signs as FHIR R4 bundles and long CSV per site) for config["sites"] sites,
# then the pilot run on it (metrics.json). Status: demo data only; the analysis rules of its
# issue are added here as they land.


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
    log:
        "logs/telemonitoring/run.log",
    conda:
        "../envs/secured_bio.yaml"
    params:
        out=subpath(output.metrics, parent=True),
        sites=config["sites"],
    shell:
        "secured-bio -v pilots run telemonitoring --data {input} --sites {params.sites} "
        "--out {params.out} 2> {log}"

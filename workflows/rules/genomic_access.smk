# Pilot genomic_access: demo cohort (bgzipped + tabix-indexed VCF per site, phenotypes, covariates) for config["sites"] sites,
# then the pilot run on it (metrics.json). Status: demo data only; the analysis rules of its
# issue are added here as they land.


rule genomic_access_demo:
    output:
        directory("results/genomic_access/demo"),
    log:
        "logs/genomic_access/demo.log",
    conda:
        "../envs/secured_bio.yaml"
    params:
        sites=config["sites"],
        seed=config["seed"],
        extra=demo_params("genomic_access"),
    shell:
        "secured-bio -v demo genomic_access --sites {params.sites} --seed {params.seed} "
        "{params.extra} --out {output} 2> {log}"


rule genomic_access_run:
    input:
        "results/genomic_access/demo",
    output:
        metrics="results/genomic_access/run/metrics.json",
        validation="results/genomic_access/run/validation.json",
    log:
        "logs/genomic_access/run.log",
    conda:
        "../envs/secured_bio.yaml"
    params:
        out=subpath(output.metrics, parent=True),
        sites=config["sites"],
    shell:
        "secured-bio -v pilots run genomic_access --data {input} --sites {params.sites} "
        "--out {params.out} 2> {log}"

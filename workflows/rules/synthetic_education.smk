# Pilot synthetic_education: demo sources (paediatric oncology case table, vital signs per
# site, imaging cohort), the case spec (config["education"]["spec"] or the example spec),
# the teaching cases (`secured-bio education cases`: one JSON/Markdown/HTML page per case
# with its privacy statement) and the pilot's metrics (`secured-bio pilots collect`).
# Layout: the sources in results/synthetic_education/demo/, everything else under
# results/synthetic_education/run/ (as `secured-bio pilots run synthetic_education` writes it).


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


rule synthetic_education_spec:
    output:
        "results/synthetic_education/run/spec.yaml",
    log:
        "logs/synthetic_education/spec.log",
    conda:
        "../envs/secured_bio.yaml"
    params:
        given=config["education"]["spec"] or "",
    shell:
        "if [ -n '{params.given}' ]; then cp '{params.given}' {output}; "
        "else secured-bio education example-spec > {output}; fi 2> {log}"


rule synthetic_education_cases:
    input:
        demo="results/synthetic_education/demo",
        spec="results/synthetic_education/run/spec.yaml",
    output:
        manifest="results/synthetic_education/run/cases/cases.json",
        index=report(
            "results/synthetic_education/run/cases/index.html",
            caption="../report/education_cases.rst",
            category="Synthetic education",
        ),
    log:
        "logs/synthetic_education/cases.log",
    conda:
        "../envs/secured_bio.yaml"
    params:
        out=subpath(output.manifest, parent=True),
        overrides=education_overrides(),
    shell:
        "secured-bio -v education cases --spec {input.spec} --sources {input.demo} "
        "{params.overrides} --no-progress --out {params.out} 2> {log}"


rule synthetic_education_metrics:
    input:
        "results/synthetic_education/run/cases/cases.json",
    output:
        "results/synthetic_education/run/metrics.json",
    log:
        "logs/synthetic_education/metrics.log",
    conda:
        "../envs/secured_bio.yaml"
    params:
        root=subpath(output[0], parent=True),
    shell:
        "secured-bio -v pilots collect synthetic_education --results {params.root} 2> {log}"

# secured_bio workflow: every pilot's demo cohort and outputs for config["sites"] sites.
#
#   snakemake --cores 2                 run everything (what `make demo` runs)
#   snakemake --cores 2 -n              dry run
#   snakemake --report report.html      HTML report of the last run
#
# Rules call the `secured-bio` command; logic lives in the library (secured_bio/).


include: "workflows/rules/common.smk"
include: "workflows/rules/genomic_access.smk"
include: "workflows/rules/tumor_classification.smk"
include: "workflows/rules/telemonitoring.smk"
include: "workflows/rules/synthetic_education.smk"


report: "workflows/report/workflow.rst"


rule all:
    input:
        [pilot_metrics(p) for p in config["pilots"]],
        "results/summary.md",
    default_target: True


# The curated summary (`make demo` prints it), the full detail and the results page.
rule summary:
    input:
        [pilot_metrics(p) for p in config["pilots"]],
    output:
        summary=report(
            "results/summary.md", caption="workflows/report/summary.rst", category="Summary"
        ),
        full="results/summary_full.md",
        page=report(
            "results/index.html", caption="workflows/report/results_page.rst", category="Summary"
        ),
    log:
        "logs/summary.log",
    conda:
        "workflows/envs/secured_bio.yaml"
    params:
        results=subpath(output.summary, parent=True),
    shell:
        "secured-bio -v summarize {params.results} --out {output.summary} "
        "--full {output.full} --html {output.page} 2> {log}"

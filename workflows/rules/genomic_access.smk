# Pilot genomic_access: per-site ingest + QC, then the secure multi-site GWAS (one process
# per site; only summed statistics are revealed), plots, and the pilot's metrics.
# Layout: the cohort in results/genomic_access/demo/, everything else under
# results/genomic_access/run/, as `secured-bio pilots run genomic_access --data
# results/genomic_access/demo --out results/genomic_access/run` writes it (see
# pilots/genomic_access/plugin.py); the same layout as every pilot's.


rule genomic_access_demo:
    output:
        vcf=expand("results/genomic_access/demo/{site}.vcf.gz", site=SITES),
        tbi=expand("results/genomic_access/demo/{site}.vcf.gz.tbi", site=SITES),
        pheno="results/genomic_access/demo/pheno.tsv",
        covar="results/genomic_access/demo/covar.tsv",
        truth="results/genomic_access/demo/truth.json",
        ancestry="results/genomic_access/demo/ancestry.tsv",
        manifest="results/genomic_access/demo/cohort.json",
    log:
        "logs/genomic_access/demo.log",
    conda:
        "../envs/secured_bio.yaml"
    params:
        out=subpath(output.manifest, parent=True),
        sites=config["sites"],
        seed=config["seed"],
        extra=demo_params("genomic_access"),
    shell:
        "secured-bio -v demo genomic_access --sites {params.sites} --seed {params.seed} "
        "{params.extra} --out {params.out} 2> {log}"


rule genomic_access_ingest:
    input:
        vcf="results/genomic_access/demo/{site}.vcf.gz",
        tbi="results/genomic_access/demo/{site}.vcf.gz.tbi",
    output:
        directory("results/genomic_access/run/stores/{site}.zarr"),
    log:
        "logs/genomic_access/ingest_{site}.log",
    conda:
        "../envs/secured_bio.yaml"
    shell:
        "secured-bio -v genomics ingest --vcf {input.vcf} --out {output} 2> {log}"


rule genomic_access_qc:
    input:
        "results/genomic_access/run/stores/{site}.zarr",
    output:
        multiext(
            "results/genomic_access/run/qc/{site}",
            ".afreq",
            ".hardy",
            ".vmiss",
            ".smiss",
            ".het",
            ".qc.json",
        ),
    log:
        "logs/genomic_access/qc_{site}.log",
    conda:
        "../envs/secured_bio.yaml"
    params:
        prefix=subpath(output[0], strip_suffix=".afreq"),
    shell:
        "secured-bio -v genomics qc --zarr {input} --out {params.prefix} 2> {log}"


rule genomic_access_gwas:
    input:
        stores=expand("results/genomic_access/run/stores/{site}.zarr", site=SITES),
        pheno="results/genomic_access/demo/pheno.tsv",
        covar="results/genomic_access/demo/covar.tsv",
    output:
        table="results/genomic_access/run/gwas/cohort.{test}.tsv",
        ssf="results/genomic_access/run/gwas/cohort.{test}.ssf.tsv",
        meta="results/genomic_access/run/gwas/cohort.{test}.ssf.tsv-meta.yaml",
        summary="results/genomic_access/run/gwas/cohort.{test}.summary.json",
        manhattan=report(
            "results/genomic_access/run/gwas/cohort.{test}.manhattan.png",
            caption="../report/gwas_manhattan.rst",
            category="Genomic access",
        ),
        qq=report(
            "results/genomic_access/run/gwas/cohort.{test}.qq.png",
            caption="../report/gwas_qq.rst",
            category="Genomic access",
        ),
    log:
        "logs/genomic_access/gwas_{test}.log",
    conda:
        "../envs/secured_bio.yaml"
    params:
        prefix=lambda wildcards, output: output.table.removesuffix(f".{wildcards.test}.tsv"),
        sites=lambda wildcards, input: " ".join(
            f"--site {site}={store}" for site, store in zip(SITES, input.stores)
        ),
        covar=lambda wildcards, input: (
            f"--covar {input.covar}" if wildcards.test in ("linear", "logistic") else ""
        ),
        pheno_name=lambda wildcards: "quant" if wildcards.test == "linear" else "case",
        pcs=lambda wildcards: (
            f"--pcs {config['gwas']['pcs']}" if wildcards.test in ("linear", "logistic") else ""
        ),
    shell:
        "secured-bio -v gwas secure {params.sites} --pheno {input.pheno} "
        "--pheno-name {params.pheno_name} {params.covar} {params.pcs} --test {wildcards.test} "
        "--out {params.prefix} 2> {log}"


rule genomic_access_metrics:
    input:
        manifest="results/genomic_access/demo/cohort.json",
        truth="results/genomic_access/demo/truth.json",
        qc=expand("results/genomic_access/run/qc/{site}.qc.json", site=SITES),
        gwas="results/genomic_access/run/gwas/cohort.linear.summary.json",
    output:
        "results/genomic_access/run/metrics.json",
    log:
        "logs/genomic_access/metrics.log",
    conda:
        "../envs/secured_bio.yaml"
    params:
        root=subpath(output[0], parent=True),
        data=subpath(input.manifest, parent=True),
        pcs=config["gwas"]["pcs"],
    shell:
        "secured-bio -v pilots collect genomic_access --results {params.root} "
        "--set data={params.data} --set test=linear --set pcs={params.pcs} 2> {log}"

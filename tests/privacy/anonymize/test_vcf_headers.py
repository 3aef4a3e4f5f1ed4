"""VCF de-identification on the header lines real pipelines write (GATK3/4, DRAGEN, bcftools).

The header forms follow what the tools write (GATK 3.8 ``##GATKCommandLine.<Walker>``, GATK 4
``##GATKCommandLine=<...CommandLine="...">``, DRAGEN ``##DRAGENCommandLine``, bcftools
``##bcftools_<cmd>Command``/``Version``); paths and sample names are made up.  The output is
checked as a whole (decompressed) for every original sample ID and every local path fragment
of the input header, and read back with pysam (htslib) and bcftools.
"""

from __future__ import annotations

import gzip
import json
import re
import subprocess
from pathlib import Path

import click
import pysam
import pytest
from click.testing import CliRunner
from conftest import require_tools

from secured_bio.errors import ConfigError, InputError
from secured_bio.privacy.anonymize.files_cli import vcf as vcf_cmd
from secured_bio.privacy.anonymize.vcf import deidentify_vcf, pseudonymize_id

KEY = bytes(range(32))
SAMPLES = ("NA12878", "HG00097", "NA12891")

STRUCTURAL = (
    "##FILTER=<ID=PASS,Description=\"All filters passed\">\n"
    "##FILTER=<ID=LowQual,Description=\"Low quality\">\n"
    "##FORMAT=<ID=GT,Number=1,Type=String,Description=\"Genotype\">\n"
    "##FORMAT=<ID=DP,Number=1,Type=Integer,Description=\"Approximate read depth (reads with "
    "MQ=255 or with bad mates are filtered)\">\n"
    "##INFO=<ID=AC,Number=A,Type=Integer,Description=\"Allele count in genotypes, for each "
    "ALT allele, in the same order as listed\">\n"
    "##INFO=<ID=AN,Number=1,Type=Integer,Description=\"Total number of alleles in called "
    "genotypes\">\n"
    "##ALT=<ID=NON_REF,Description=\"Represents any possible alternative allele\">\n"
    "##contig=<ID=1,length=249250621,assembly=b37>\n"
    "##contig=<ID=2,length=243199373,assembly=b37>\n"
)

IDENTIFYING = (
    # GATK 3.8
    "##GATKCommandLine.HaplotypeCaller=<ID=HaplotypeCaller,Version=3.8-1-0-gf15c1c3ef,"
    "Date=\"Tue Mar 13 10:12:34 CET 2018\",Epoch=1520932354000,CommandLineOptions=\""
    "analysis_type=HaplotypeCaller input_file=[/home/jsmith/bams/NA12878.bam] "
    "showFullBamList=false read_buffer_size=null reference_sequence=/home/jsmith/ref/"
    "human_g1k_v37.fasta out=/home/jsmith/calls/NA12878.g.vcf emitRefConfidence=GVCF\">\n",
    # GATK 4
    "##GATKCommandLine=<ID=GenotypeGVCFs,CommandLine=\"GenotypeGVCFs --output "
    "/data/run42/joint.vcf.gz --variant gendb:///data/run42/genomicsdb --reference "
    "/data/ref/Homo_sapiens_assembly38.fasta\",Version=\"4.2.0.0\",Date=\"March 1, 2021 "
    "9:15:02 AM CET\">\n",
    "##GATKCommandLine=<ID=HaplotypeCaller,CommandLine=\"HaplotypeCaller --output "
    "/data/run42/NA12891.g.vcf.gz --input /data/run42/NA12891.bam --emit-ref-confidence GVCF"
    "\",Version=\"4.2.0.0\",Date=\"March 1, 2021 8:01:12 AM CET\">\n",
    # DRAGEN
    "##DRAGENCommandLine=<ID=dragen,Version=\"SW: 07.021.624.3.10.4, HW: 07.021.624\","
    "Date=\"Wed Jun 15 11:02:41 UTC 2022\",CommandLineOptions=\"-f -r /staging/ref/hg38 "
    "--fastq-file1 /staging/fastq/HG00097_R1.fastq.gz --RGSM HG00097 --RGID run1 "
    "--output-directory /staging/out/HG00097 --enable-variant-caller true\">\n",
    # bcftools (Command lines name the subset and the paths)
    "##bcftools_viewCommand=view -s NA12878,HG00097,NA12891 -Oz -o /data/ward7/trio.vcf.gz "
    "/data/ward7/cohort.vcf.gz; Date=Thu Jan 12 09:15:01 2023\n",
    "##bcftools_normCommand=norm -m- -f /home/jsmith/ref/hs37d5.fa trio.vcf.gz; "
    "Date=Thu Jan 12 09:16:44 2023\n",
    # free-text source, references to local files, dates, sample and pedigree lines
    "##source=GATK pipeline run for sample HG00097\n",
    "##reference=file:///home/jsmith/ref/hs37d5.fa\n",
    "##fileDate=20230112\n",
    "##SAMPLE=<ID=NA12878,Genomes=Germline,Mixture=1.,Description=\"Platinum genome\">\n",
    "##PEDIGREE=<Child=NA12878,Mother=NA12892,Father=NA12891>\n",
    "##commandline=\"freebayes -f /home/jsmith/ref.fa /home/jsmith/NA12878.bam\"\n",
    "##cmdline=/opt/strelka/bin/configureStrelkaGermlineWorkflow.py --bam NA12878.bam\n",
    "##SnpEffCmd=\"SnpEff  GRCh37.75 /home/jsmith/trio.vcf \"\n",
)

KEPT = (
    "##source=HaplotypeCaller\n",
    "##source=SelectVariants\n",
    "##bcftools_viewVersion=1.16+htslib-1.16\n",
    "##bcftools_normVersion=1.16+htslib-1.16\n",
    "##DeepVariant_version=1.5.0\n",
    "##GVCFBlock55-56=minGQ=55(inclusive),maxGQ=56(exclusive)\n",
    "##reference=GRCh37\n",
)

RECORDS = (
    "1\t10177\trs367896724\tA\tAC\t100\tPASS\tAC=3;AN=6\tGT:DP\t0/1:12\t1/1:8\t0/1:20\n"
    "1\t10352\t.\tT\tTA\t88.1\tPASS\tAC=2;AN=6\tGT:DP\t0|1:9\t0|0:11\t1|0:7\n"
    "2\t10616\t.\tCCGCCGTTGCAAAGGCGCGCCG\tC\t55\tLowQual\tAC=1;AN=6\tGT:DP\t0/0:3\t0/1:5\t./.:.\n"
)


def _vcf(header_lines: tuple[str, ...] | list[str], samples: tuple[str, ...] = SAMPLES,
         records: str = RECORDS) -> str:
    chrom = "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\t" + "\t".join(samples)
    return "##fileformat=VCFv4.2\n" + STRUCTURAL + "".join(header_lines) + chrom + "\n" + records


def _text(path: Path) -> str:
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        return fh.read()


def _path_fragments(lines: tuple[str, ...]) -> set[str]:
    """Every local path in the input header, and each of its components longer than 3."""
    found = set()
    for line in lines:
        for path in re.findall(r"(?:file://)?(/[\w.~/-]+)", line):
            found.add(path)
            found.update(p for p in path.split("/") if len(p) > 3)
    return found


@pytest.fixture()
def pipeline_vcf(tmp_path: Path) -> Path:
    path = tmp_path / "trio.vcf"
    path.write_text(_vcf(list(IDENTIFYING) + list(KEPT)), encoding="utf-8")
    return path


def test_deidentify_vcf__pipeline_headers_leave_no_sample_id_or_path(
        pipeline_vcf: Path, tmp_path: Path) -> None:
    out = tmp_path / "release.vcf.gz"
    report = deidentify_vcf(pipeline_vcf, out, key=KEY)
    text = _text(out)
    # No original sample ID anywhere (case-insensitive), in the output or in the report.
    everything = (text + json.dumps(report.to_dict()) + report.summary()).lower()
    for sid in (*SAMPLES, "NA12892"):
        assert sid.lower() not in everything
    # No local path (nor any of its components: user, run and ward folders, file names).
    fragments = _path_fragments(IDENTIFYING)
    assert {"/home/jsmith/bams/NA12878.bam", "jsmith", "staging", "ward7"} <= fragments
    leaked = sorted(f for f in fragments if f in text)
    assert leaked == [], f"{len(leaked)} path fragment(s) left"
    # What stays: structural lines byte for byte, program names and versions.
    header = [x for x in text.splitlines(keepends=True) if x.startswith("##")]
    for line in STRUCTURAL.splitlines(keepends=True) + list(KEPT):
        assert line in header
    assert report.header_lines_removed == {
        "DRAGENCommandLine": 1, "GATKCommandLine": 2, "GATKCommandLine.HaplotypeCaller": 1,
        "PEDIGREE": 1, "SAMPLE": 1, "SnpEffCmd": 1, "bcftools_normCommand": 1,
        "bcftools_viewCommand": 1, "cmdline": 1, "commandline": 1, "fileDate": 1,
        "reference": 1, "source": 1}


@pytest.mark.reference
def test_deidentify_vcf__pipeline_headers_output_reads_in_bcftools(
        pipeline_vcf: Path, tmp_path: Path) -> None:
    require_tools("bcftools")
    out = tmp_path / "release.vcf.gz"
    deidentify_vcf(pipeline_vcf, out, key=KEY)
    with open(out, "rb") as fh:  # BGZF: gzip members with the BC extra field
        assert fh.read(16)[12:14] == b"BC"

    def query(path: Path, *args: str) -> str:
        return subprocess.run(["bcftools", *args, str(path)], check=True, capture_output=True,
                              text=True).stdout

    assert query(out, "query", "-l").split() == [pseudonymize_id(s, KEY) for s in SAMPLES]
    fmt = "%CHROM\t%POS\t%ID\t%REF\t%ALT\t%FILTER\t%INFO/AC[\t%GT:%DP]\n"
    assert query(out, "query", "-f", fmt) == query(pipeline_vcf, "query", "-f", fmt)
    assert query(out, "view", "-H", "-r", "2").count("\n") == 1  # the tabix index works
    with pysam.VariantFile(str(out)) as vf:
        assert list(vf.header.contigs) == ["1", "2"]
        assert {"AC", "AN"} <= set(vf.header.info)


@pytest.mark.parametrize("line, key", [
    ("##DeepVariant_sample=NA12878\n", "DeepVariant_sample"),
    ("##source=HG00097\n", "source"),
    ("##pipeline=<ID=wgs,Description=\"germline calls of na12891 (trio)\">\n", "pipeline"),
    ("##INFO=<ID=XS,Number=1,Type=Float,Description=\"Score against NA12878 truth\">\n",
     "INFO"),
])
def test_deidentify_vcf__other_line_naming_a_sample_refuses_and_names_only_the_key(
        tmp_path: Path, line: str, key: str) -> None:
    src = tmp_path / "in.vcf"
    src.write_text(_vcf([line]), encoding="utf-8")
    out = tmp_path / "o.vcf.gz"
    with pytest.raises(InputError, match="names an original sample ID") as info:
        deidentify_vcf(src, out, key=KEY)
    message = str(info.value)
    assert f"(##{key})" in message
    assert not any(s.lower() in message.lower() for s in SAMPLES)
    assert not out.exists() and not Path(str(out) + ".tbi").exists()
    assert list(tmp_path.iterdir()) == [src]  # no temporary left either


def test_deidentify_vcf__drop_header_key_removes_the_refused_line(tmp_path: Path) -> None:
    src = tmp_path / "in.vcf"
    src.write_text(_vcf(["##DeepVariant_sample=NA12878\n"]), encoding="utf-8")
    report = deidentify_vcf(src, tmp_path / "o.vcf.gz", key=KEY,
                            drop_header=["DeepVariant_sample"])
    assert report.header_lines_removed == {"DeepVariant_sample": 1}
    assert "na12878" not in _text(tmp_path / "o.vcf.gz").lower()
    with pytest.raises(ConfigError, match="records depend on"):
        deidentify_vcf(src, tmp_path / "p.vcf.gz", key=KEY, drop_header=["INFO"])


def test_deidentify_vcf__contig_reference_path_removed_from_the_line(tmp_path: Path) -> None:
    line = ("##contig=<ID=3,length=198022430,assembly=b37,md5=fdfd811849cc2fadebc929bb925902e5,"
            "URL=file:/home/jsmith/ref/human_g1k_v37.fasta,species=\"Homo sapiens\">\n")
    src = tmp_path / "in.vcf"
    src.write_text(_vcf([line]), encoding="utf-8")
    report = deidentify_vcf(src, tmp_path / "o.vcf.gz", key=KEY)
    text = _text(tmp_path / "o.vcf.gz")
    assert ("##contig=<ID=3,length=198022430,assembly=b37,md5=fdfd811849cc2fadebc929bb925902e5,"
            "species=\"Homo sapiens\">\n") in text
    assert "jsmith" not in text and report.header_lines_removed == {"contig:path attribute": 1}


def test_deidentify_vcf__record_info_naming_a_sample_refuses(tmp_path: Path) -> None:
    records = RECORDS.replace("AC=1;AN=6", "AC=1;AN=6;TRUTH=NA12878")
    src = tmp_path / "in.vcf"
    src.write_text(_vcf([], records=records), encoding="utf-8")
    with pytest.raises(InputError, match="INFO column names an original sample ID") as info:
        deidentify_vcf(src, tmp_path / "o.vcf.gz", key=KEY)
    assert "NA12878" not in str(info.value)
    assert not (tmp_path / "o.vcf.gz").exists()


def test_deidentify_vcf__short_ids_not_searched_in_numbers(tmp_path: Path) -> None:
    """IDs under 4 characters (``1``, ``16``) would match contig names and versions."""
    src = tmp_path / "in.vcf"
    src.write_text(_vcf(["##bcftools_viewVersion=1.16+htslib-1.16\n"], samples=("1", "16", "A3")),
                   encoding="utf-8")
    report = deidentify_vcf(src, tmp_path / "o.vcf.gz", key=KEY)
    assert report.samples == 3 and report.header_lines_removed == {}


def _group() -> click.Group:
    group = click.Group("anonymize")
    group.add_command(vcf_cmd, "vcf")
    return group


def test_cli_vcf__refusal_exits_nonzero_writes_nothing_and_drop_header_fixes_it(
        tmp_path: Path) -> None:
    src = tmp_path / "in.vcf"
    src.write_text(_vcf(list(IDENTIFYING) + ["##DeepVariant_sample=NA12878\n"]),
                   encoding="utf-8")
    key_file = tmp_path / "site.key"
    key_file.write_bytes(KEY)
    out = tmp_path / "rel" / "o.vcf.gz"
    args = ["vcf", str(src), str(out), "--key-file", str(key_file),
            "--report", str(tmp_path / "r.json")]
    res = CliRunner().invoke(_group(), args)
    assert res.exit_code != 0 and isinstance(res.exception, InputError)
    assert "--drop-header 'DeepVariant_sample'" in str(res.exception)
    assert not out.exists() and not (tmp_path / "r.json").exists()
    res = CliRunner().invoke(_group(), [*args, "--drop-header", "DeepVariant_sample"])
    assert res.exit_code == 0, res.output
    assert "na12878" not in _text(out).lower()

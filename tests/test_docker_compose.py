"""docker-compose.yml validated by the docker-compose CLI itself (no Docker engine needed)."""

import base64
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]


def compose_command() -> list[str] | None:
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True)
        if probe.returncode == 0:
            return ["docker", "compose"]
    return None


@pytest.fixture(scope="module")
def resolved() -> dict:
    command = compose_command()
    if command is None:
        pytest.skip("no docker-compose CLI nor docker compose plugin (apt-get install docker-compose)")
    result = subprocess.run(
        [*command, "-f", str(REPO_ROOT / "docker-compose.yml"), "config"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def test_services_and_their_images(resolved):
    services = resolved["services"]
    assert set(services) == {"kafka", "topics", "simulator", "worker", "trainer", "serve", "prometheus", "grafana"}
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert services["prometheus"]["image"].startswith("prom/prometheus:")
    assert services["grafana"]["image"].startswith("grafana/grafana:")


def test_kafka_runs_in_kraft_mode_with_a_valid_cluster_id(resolved):
    env = resolved["services"]["kafka"]["environment"]
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == "1@kafka:9093"
    cluster_id = env["CLUSTER_ID"]
    assert len(cluster_id) == 22 and len(base64.urlsafe_b64decode(cluster_id + "==")) == 16
    assert "INTERNAL://kafka:9092" in env["KAFKA_ADVERTISED_LISTENERS"]


def test_pipeline_services_share_one_image_and_reach_the_compose_broker(resolved):
    services = resolved["services"]
    for name, command in (("worker", ["worker"]), ("trainer", ["train"]), ("topics", ["topics", "create"]),
                          ("simulator", ["simulate", "--rate", "200", "--no-progress"])):  # fmt: skip
        service = services[name]
        assert service["command"] == command
        assert Path(service["build"]["context"]) == REPO_ROOT
        assert service["environment"]["PEPNET_KAFKA_BOOTSTRAP"] == "kafka:9092"
        assert service["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert (REPO_ROOT / "Dockerfile").is_file()
    assert services["worker"]["depends_on"]["topics"]["condition"] == "service_completed_successfully"


def test_mounted_monitoring_files_exist(resolved):
    services = resolved["services"]
    mounts = [v for name in ("prometheus", "grafana") for v in services[name]["volumes"]]
    sources = [Path(m["source"] if isinstance(m, dict) else m.split(":")[0]) for m in mounts]
    host_paths = [p for p in sources if p.is_absolute()]
    assert host_paths and all(p.exists() for p in host_paths), host_paths
    assert (REPO_ROOT / "deploy/prometheus/prometheus.yml").is_file()
    assert (REPO_ROOT / "deploy/grafana/provisioning/datasources").is_dir()


def test_published_ports_bind_loopback_only(resolved):
    published = [port for service in resolved["services"].values() for port in service.get("ports", [])]
    assert published
    for port in published:
        text = port if isinstance(port, str) else f"{port.get('host_ip', '')}:{port.get('published')}"
        assert text.startswith("127.0.0.1:"), port


def test_dockerfile_installs_a_cpu_torch_and_no_editable_package():
    text = (REPO_ROOT / "Dockerfile").read_text()
    assert "--index-url https://download.pytorch.org/whl/cpu" in text
    assert "pip install -e" not in text


def test_dockerfile_copies_only_paths_that_exist():
    for line in (REPO_ROOT / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (REPO_ROOT / source).exists(), line


def test_every_compose_command_is_a_pepnet_subcommand(resolved):
    from stream.cli.main import build_parser

    parser = build_parser()
    for name in ("topics", "simulator", "worker", "trainer", "serve"):
        command = resolved["services"][name]["command"]
        with pytest.raises(SystemExit) as exited:
            parser.parse_args([*command, "--help"])
        assert exited.value.code == 0, command


def test_the_scoring_service_reads_the_trainers_exports_and_is_scraped(resolved):
    from stream.serving.config import ServingConfig

    def runs_volume(service: str) -> tuple[str, str]:
        """(target, mode) of the service's mount of the `runs` volume (compose prints it short or long)."""
        for volume in resolved["services"][service]["volumes"]:
            if isinstance(volume, str):
                source, target, *mode = volume.split(":")
                if source == "runs":
                    return target, (mode or ["rw"])[0]
            elif volume["source"] == "runs":
                return volume["target"], "ro" if volume.get("read_only") else "rw"
        raise AssertionError(f"{service} does not mount the runs volume")

    services = resolved["services"]
    assert runs_volume("serve") == (runs_volume("trainer")[0], "ro")
    port = ServingConfig().port
    assert "--host" in services["serve"]["command"] and "0.0.0.0" in services["serve"]["command"]
    prometheus = yaml.safe_load((REPO_ROOT / "deploy/prometheus/prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in prometheus["scrape_configs"]}
    assert jobs["pepnet-serve"]["static_configs"][0]["targets"] == [f"serve:{port}"]

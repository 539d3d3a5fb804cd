"""A throwaway Orthanc (Debian's ``orthanc`` + ``orthanc-dicomweb``) for the DICOMweb tests.

:func:`running_orthanc` starts one on a free loopback port with its own storage folder and
a generated configuration (DICOMweb plugin on, DICOM port off, no authentication, remote
access refused), waits until ``GET /system`` answers, and stops it (terminate, wait) at
the end. :func:`store_sample_studies` loads ``sample_dicom/`` into it through STOW-RS with
dicomweb-client. Nothing is downloaded: a missing Orthanc is reported by
:func:`find_orthanc` and the tests skip (or fail under ``CI=true``).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pydicom

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "sample_dicom"
VISITS = ("BL", "W8", "W16")
# Where Debian puts them (`dpkg -L orthanc orthanc-dicomweb`); ORTHANC and
# ORTHANC_DICOMWEB_PLUGIN override.
EXECUTABLES = ("/usr/sbin/Orthanc", "/usr/bin/Orthanc")
PLUGINS = ("/usr/share/orthanc/plugins/libOrthancDicomWeb.so",
           "/usr/lib/orthanc/libOrthancDicomWeb.so")
START_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Orthanc:
    url: str  # the REST API, e.g. http://127.0.0.1:40123
    dicomweb: str  # its DICOMweb root, url + /dicom-web
    version: str
    plugin: str
    folder: Path  # storage, index, configuration and log
    started_in_s: float


def find_orthanc() -> tuple[str, str] | str:
    """(executable, plugin), or why they cannot be used."""
    executable = os.environ.get("ORTHANC") or next(
        (p for p in (shutil.which("Orthanc"), *EXECUTABLES) if p and Path(p).is_file()), None)
    if executable is None:
        return "Orthanc is not installed (apt-get install -y orthanc orthanc-dicomweb)"
    plugin = os.environ.get("ORTHANC_DICOMWEB_PLUGIN") or next(
        (p for p in PLUGINS if Path(p).is_file()), None)
    if plugin is None or not Path(plugin).is_file():
        return "Orthanc's DICOMweb plugin is not installed (apt-get install -y orthanc-dicomweb)"
    return executable, plugin


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _config(folder: Path, port: int, plugin: str) -> dict[str, object]:
    storage = folder / "storage"
    storage.mkdir(exist_ok=True)
    return {
        "Name": "recist-tests",
        "StorageDirectory": str(storage),
        "IndexDirectory": str(storage),
        "TemporaryDirectory": str(folder),
        "HttpPort": port,
        "RemoteAccessAllowed": False,  # loopback only, so no authentication is needed
        "AuthenticationEnabled": False,
        "DicomServerEnabled": False,  # DICOMweb only: no DICOM port to collide with
        "DicomPort": free_port(),
        "Plugins": [plugin],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "EnableWado": False},
        "HttpThreadsCount": 4,  # two cores shared with other jobs
        "ConcurrentJobs": 1,
        "SaveJobs": False,
        "HttpCompressionEnabled": False,
        "LoadPrivateDictionary": False,
        "StorageAccessOnFind": "Always",  # QIDO-RS on (0012,0040) reads the stored files
    }


def _system(url: str) -> dict[str, object] | None:
    try:
        with urllib.request.urlopen(f"{url}/system", timeout=1) as answer:  # loopback only
            return dict(json.load(answer))
    except (urllib.error.URLError, OSError, ValueError):
        return None


@contextmanager
def running_orthanc(folder: Path) -> Iterator[Orthanc]:
    """Orthanc on a free loopback port, storing into ``folder``; stopped at the end."""
    found = find_orthanc()
    if isinstance(found, str):
        raise FileNotFoundError(found)
    executable, plugin = found
    for _ in range(3):  # the free port may be taken between finding it and Orthanc binding it
        port = free_port()
        config = folder / "orthanc.json"
        config.write_text(json.dumps(_config(folder, port, plugin), indent=2))
        url = f"http://127.0.0.1:{port}"
        log = (folder / "orthanc.log").open("ab")
        started = time.monotonic()
        process = subprocess.Popen([executable, str(config)], stdout=log, stderr=log,
                                   cwd=folder)
        system = None
        while process.poll() is None and time.monotonic() - started < START_TIMEOUT_S:
            system = _system(url)
            if system is not None:
                break
            time.sleep(0.05)
        if system is None:
            _stop(process)
            log.close()
            continue
        try:
            yield Orthanc(url, f"{url}/dicom-web", str(system.get("Version", "?")), plugin,
                          folder, time.monotonic() - started)
        finally:
            _stop(process)
            log.close()
        return
    tail = (folder / "orthanc.log").read_text(errors="replace")[-2000:]
    raise RuntimeError(f"Orthanc did not answer GET /system within {START_TIMEOUT_S:g} s:\n"
                       f"{tail}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def sample_files(visit: str) -> list[Path]:
    return [*sorted((SAMPLE / visit / "CT").glob("*.dcm")), SAMPLE / visit / "SEG.dcm"]


def store_sample_studies(dicomweb: str, visits: tuple[str, ...] = VISITS) -> dict[str, str]:
    """STOW-RS of sample_dicom's studies (dicomweb-client); visit -> StudyInstanceUID."""
    from dicomweb_client.api import DICOMwebClient

    client = DICOMwebClient(dicomweb)
    uids = {}
    for visit in visits:
        datasets = [pydicom.dcmread(path) for path in sample_files(visit)]
        answer = client.store_instances(datasets)
        failed = answer.get("FailedSOPSequence", [])
        stored = answer.get("ReferencedSOPSequence", [])
        assert not failed and len(stored) == len(datasets), (visit, answer)
        uids[visit] = str(datasets[0].StudyInstanceUID)
    return uids

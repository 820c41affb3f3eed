"""Packaging for pip. The ROS 2 build (colcon) uses package.xml + CMakeLists.txt instead.

Metadata lives here, not in pyproject.toml, because ROS tooling reads setup.py; pyproject.toml
holds only the build backend and tool settings.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).parent
PACKAGE = "vidihand_ros"


class BuildPyWithInterfaces(build_py):
    """Copy the ROS interface definitions (`msg/*.msg`) into the wheel.

    ROS keeps them in `msg/` at the package root; a pip install needs them inside the Python
    package so that `vidihand_ros.sinks.hand_poses` can register them in `rosbags` typestores.
    """

    def run(self) -> None:
        super().run()
        target = Path(self.build_lib) / PACKAGE / "interfaces"
        target.mkdir(parents=True, exist_ok=True)
        for msg in sorted((HERE / "msg").glob("*.msg")):
            shutil.copy2(msg, target / msg.name)


# zarr-python 3 needs Python >= 3.11; Humble's Python 3.10 writes the same on-disk format
# (zarr format 2) with zarr-python 2.18 behind `vidihand_ros.dataset.zarr_compat`.
CORE = [
    "numpy>=1.24",
    # One implementation of array math for numpy (core) and torch (model), e.g. the translation solve.
    "array-api-compat>=1.11",
    "scipy>=1.10",
    "rosbags>=0.11.9,<0.12",
    "rosbags-image[opencv-headless]>=0.10.4,<0.11",
    # Imported by the core itself (image resize, undistortion; calibration YAML), not only
    # through rosbags / rosbags-image.
    "opencv-python-headless>=4.8",
    "ruamel.yaml>=0.17",
    "zarr>=3.1,<4; python_version>='3.11'",
    "zarr>=2.18.3,<3; python_version<'3.11'",
    "numcodecs>=0.13",
    "imagecodecs>=2024.9.22",
    "rich>=13",
    # The inference server's wire format and its client (`--estimator remote`, the ROS node).
    "msgpack>=1.0,<2",
    "httpx>=0.27,<1",
]
VIDEO = ["av>=12"]
# Pillow writes reference JPEGs (progressive, EXIF, CMYK) for the JPEG checker's tests.
# schemathesis fuzzes the inference server against its OpenAPI document.
TEST = ["pytest>=8", "hypothesis>=6.100", "pillow>=10", "schemathesis>=4,<5"]
LINT = ["ruff>=0.8", "mypy>=1.13"]
# The MediaPipe baseline estimator. mediapipe 0.10.21 is the last wheel that carries the hand
# models (.tflite) inside, so nothing is downloaded at run time; it was built against numpy 1.x
# (`numpy<2`), while the newest releases of several core dependencies require numpy>=2. Each pin
# below is the newest release that still accepts numpy 1.26, so that pip resolves at once instead
# of backtracking through hundreds of MB of wheels. The core without this extra stays on numpy 2.
BASELINE = [
    "mediapipe==0.10.21",
    "numpy>=1.26,<2",
    # mediapipe needs opencv-contrib-python, rosbags-image needs opencv-python-headless; both
    # install the same `cv2` package, so both are pinned to one release (4.12 needs numpy>=2).
    "opencv-contrib-python==4.11.0.86",
    "opencv-python-headless==4.11.0.86",
    "imagecodecs>=2024.9.22,<=2026.1.14",  # 2026.3.6 needs numpy>=2
    "zarr>=3.1,<=3.1.5; python_version>='3.11'",  # 3.1.6 needs numpy>=2
    # mediapipe requires jax/jaxlib (unused by the hand solution): 0.7.2 needs numpy>=2, and
    # ml_dtypes 0.6 (a jax dependency) too.
    "jax<=0.7.1",
    "jaxlib<=0.7.1",
    "ml_dtypes>=0.5,<0.6",
    # pyarrow (exports; rerun-sdk's dependency) 26 needs numpy>=2 at import, not in its metadata.
    "pyarrow<26",
]
# The ViDiHand model: Wan2.1-VACE / Wan2.2 backbone through diffusers, LoRA through peft, weights
# and checkpoints through safetensors (never pickles). torch is pinned: an unpinned torch pulls a
# multi-GB CUDA build; GPU servers install their own CUDA torch first (see README).
MODEL = ["torch==2.13.0", "diffusers==0.42.1", "peft==0.21.2", "safetensors>=0.4", "accelerate>=1.0"]
# The inference server (`vidihand serve`): FastAPI under uvicorn, Prometheus metrics.
SERVE = ["fastapi>=0.115,<1", "uvicorn>=0.30,<1", "prometheus-client>=0.20,<1"]
# Scale-out on Ray (`vidihand serve --ray`, `vidihand convert --ray`). ray 2.60 requires
# protobuf>=5, which breaks mediapipe 0.10.21 (protobuf<5); 2.59.0 is the newest release that
# still runs on protobuf 4, so the `all` environment (baseline + ray) resolves.
RAY = ["ray[serve]==2.59.0", "protobuf>=4.25.3,<5"]
# Reading training/evaluation datasets (EgoDex stores its annotations in HDF5).
TRAIN = ["h5py>=3.10"]
# MANO fitting for the baseline (and the ViDiHand model's MANO layer).
MANO = ["torch==2.13.0", "smplx==0.1.28"]
# Seeing a dataset (`vidihand render --rerun`, `vidihand plot`). rerun-sdk 0.22.1 is the newest
# release that accepts numpy 1.26 (0.23 needs numpy>=2), so it installs beside the MediaPipe extra.
VIEW = ["rerun-sdk==0.22.1", "matplotlib>=3.8,<4"]
# Exports (`vidihand export lerobot`): parquet tables through pyarrow, mp4 through PyAV.
EXPORT = ["pyarrow>=21,<30", *VIDEO]
# Robot-hand retargeting (`vidihand retarget`, the node's joint states) on dex-retargeting
# (pinocchio + nlopt). 0.5.0 needs numpy>=2 (the MediaPipe extra needs numpy<2) and imports torch
# and six without declaring them; 0.4.6 accepts numpy 1.26 and declares torch (pinned by the model
# extra to the CPU build) but not six, which its URDF reader imports. pin 2.7.0 and nlopt 2.7.1 are
# what pip resolves beside numpy 1.26; pinned so that it does not backtrack through pinocchio 3.
RETARGET = [
    "dex-retargeting==0.4.6",
    "six>=1.16",
    "pin==2.7.0",
    "nlopt>=2.6.1,<2.8",
    "numpy>=1.26,<2",
    "torch==2.13.0",
]

setup(
    name=PACKAGE,
    version="0.1.0",
    description="Egocentric video to two-hand 3D pose (MANO) and Zarr robot-learning datasets, for ROS 2.",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=[PACKAGE, f"{PACKAGE}.*"]),
    package_data={PACKAGE: ["py.typed", "interfaces/*.msg"]},
    install_requires=CORE,
    extras_require={
        "video": VIDEO,
        "dev": VIDEO + TEST + LINT,
        "baseline": BASELINE,
        "mano": MANO,
        "train": TRAIN,
        "model": MODEL + MANO,
        "serve": SERVE,
        "ray": SERVE + RAY,
        "view": VIEW,
        "export": EXPORT,
        "retarget": RETARGET,
        "all": VIDEO + TEST + LINT + BASELINE + MANO + TRAIN + MODEL + SERVE + RAY + VIEW + EXPORT + RETARGET,
    },
    entry_points={"console_scripts": ["vidihand = vidihand_ros.cli:main"]},
    cmdclass={"build_py": BuildPyWithInterfaces},
    zip_safe=False,
)

"""hat_arch: HAT (Hybrid Attention Transformer) for BasicSR."""
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent


def requirements() -> list[str]:
    lines = (HERE / 'requirements.txt').read_text().splitlines()
    return [line.split('#')[0].strip() for line in lines if line.split('#')[0].strip()]


setup(
    name='hat_arch',
    version='0.1.0',
    description='HAT (Hybrid Attention Transformer) super-resolution for BasicSR: exact, fast, on today\'s stack',
    long_description=(HERE / 'README.md').read_text(encoding='utf-8'),
    long_description_content_type='text/markdown',
    python_requires='>=3.9',
    packages=find_packages(include=['hat_arch', 'hat_arch.*']),
    package_data={'hat_arch.yolo': ['cfg/*.yaml'], 'hat_arch': ['weights/*.safetensors']},
    py_modules=['hat_arch_launcher'],  # the console scripts' dispatcher: no torch before the command is chosen
    install_requires=requirements(),
    extras_require={
        # playwright: tests/web drive the system's chromium with it; ruff: the linter .ci/run runs before the tests
        'test': ['pytest>=7', 'playwright>=1.40', 'ruff>=0.4'],
        'onnx': ['onnx>=1.14', 'onnxruntime>=1.16'],
        'yolo': ['ultralytics>=8.3'],  # HAT as a YOLO block: hat_arch.yolo, hat-yolo
        'web': ['gradio>=6.0'],
        'docs': ['mkdocs>=1.5', 'mkdocs-material>=9'],  # the manual: mkdocs serve / mkdocs build --strict
    },
    entry_points={
        'console_scripts': [
            'basicsr = hat_arch_launcher:basicsr_main',
            'hat-sr = hat_arch_launcher:hat_sr_main',
            'hat-yolo = hat_arch_launcher:hat_yolo_main',
        ],
    },
    license='Apache-2.0',
)

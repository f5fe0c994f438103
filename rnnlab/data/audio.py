"""Audio for CTC transcription: reading wav files, log-mel features, and band masking.

audio = read_wav("digits.wav")     # mono float32 at 8 kHz (resampled if the file has another rate)
features = log_mel(audio)          # (T, 40): 25 ms windows every 10 ms, normalised per utterance
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rnnlab.data.text import check_regular_file
from rnnlab.errors import DataError
from rnnlab.extras import require

RATE = 8000
N_MELS = 40
MAX_SECONDS = 4 * 3600  # longer recordings are refused (they would not fit in memory as features)


def read_wav(path: str | Path) -> np.ndarray:
    """Mono float32 samples at 8 kHz (resampled if the file has another rate)."""
    sf = require("soundfile", "audio")

    check_regular_file(path)
    try:
        info = sf.info(str(path))
        if info.frames > MAX_SECONDS * max(info.samplerate, 1):
            raise DataError(f"{path}: {info.frames / info.samplerate / 3600:.1f} hours, longer than rnnlab reads (4 hours)")
        audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, sf.LibsndfileError) as e:
        raise DataError(f"{path}: not a readable audio file ({e})") from None
    audio = audio.mean(axis=1)
    if len(audio) == 0:
        raise DataError(f"{path}: the recording is empty (zero samples)")
    if not np.isfinite(audio).all():
        raise DataError(f"{path}: the recording holds NaN or infinite samples")
    if rate != RATE:
        librosa = require("librosa", "audio")

        audio = librosa.resample(audio, orig_sr=rate, target_sr=RATE)
    return audio.astype(np.float32)


def log_mel(audio: np.ndarray) -> np.ndarray:
    """(T, 40) log-mel features, 25 ms windows every 10 ms, each band normalised over the utterance.

    The per-utterance mean and variance normalisation (CMVN) removes the recording's gain and the
    microphone's colouring, which otherwise tell one speaker's recordings from another's.
    """
    librosa = require("librosa", "audio")

    mel = librosa.feature.melspectrogram(
        y=audio, sr=RATE, n_fft=256, win_length=200, hop_length=80, n_mels=N_MELS, fmin=20, fmax=4000
    )
    features = np.log(mel + 1e-6).T  # (T, 40)
    features = (features - features.mean(0)) / (features.std(0) + 1e-3)
    return features.astype(np.float32)


def mask_bands(features: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """SpecAugment's frequency masking (Park et al. 2019): two random runs of up to 6 mel bands set to 0."""
    features = features.copy()
    for _ in range(2):
        width = rng.integers(0, 7)
        start = rng.integers(0, N_MELS - width + 1)
        features[:, start : start + width] = 0.0
    return features

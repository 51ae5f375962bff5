"""The podcast player offers the compressed audio first and the WAV only as the fallback."""

from __future__ import annotations

from agents.podcast import AudioFormat
from app.jobs.podcast import audio_artifact
from app.web.podcast import audio_sources

URL = "/api/research/j1/podcast"


def test_the_player_offers_mp3_then_ogg_then_wav_of_what_was_made() -> None:
    made = {audio_artifact(fmt) for fmt in AudioFormat} | {"podcast.txt"}
    offered = audio_sources(URL, made)
    assert [s.format for s in offered] == [AudioFormat.MP3, AudioFormat.OGG, AudioFormat.WAV]
    assert offered[0].url == f"{URL}?format=mp3"


def test_the_player_falls_back_to_the_wav_when_nothing_else_was_made() -> None:
    offered = audio_sources(URL, {audio_artifact(AudioFormat.WAV)})
    assert [s.url for s in offered] == [f"{URL}?format=wav"]
    assert audio_sources(URL, set()) == ()

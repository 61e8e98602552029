"""Readers and builders that turn raw corpora into tasks."""

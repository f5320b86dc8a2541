#!/usr/bin/env bash
# Stop the daemons that start.sh started.
pkill -x slurmd || true
pkill -x slurmctld || true
pkill -x munged || true

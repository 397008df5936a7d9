#!/usr/bin/env python3
"""The CDK app: ``cdk synth -c spec=config/<service>.yaml`` (default: config/mangaassist.yaml)."""

from stacks.synth import main

if __name__ == "__main__":
    main()

"""Local mode: run canarywise against moto in server mode on 127.0.0.1, with no AWS account.

Everything moto lacks is bridged here and only here; production code never imports this package.

- :mod:`canarywise.local.server` starts moto's server on a free loopback port, points boto3 at it and applies
  the patches of :mod:`canarywise.local.moto_patches` (Step Functions' SDK service name for ELBv2, Lambda
  invokes run the real handler functions in-process, an indexed CloudWatch metric store).
- :mod:`canarywise.local.lambda_runtime` runs a handler string (``canarywise.handlers.x.handler``) with the
  function's environment, the way the Lambda service would.
- :mod:`canarywise.local.provision` creates the stack's resources from the synthesized template;
  :mod:`canarywise.local.deployment` says what it created, by role.
- :mod:`canarywise.local.alarms` evaluates the metric and composite alarms (moto never does) and fires their
  actions.
"""

from __future__ import annotations

"""The ``ec2`` driver: EC2-API clouds (AWS, 3DS Outscale) through boto3."""

from flotte.drivers.ec2.driver import EC2Driver

__all__ = ["EC2Driver"]

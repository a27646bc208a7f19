"""Alliance: the partner-alliance referral platform of the securities firm."""

__version__ = "0.1.0"

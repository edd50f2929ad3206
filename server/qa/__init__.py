"""Coding quality review: the reviewer's worksheet, the derived findings and their error
categories, the coder's acknowledgement or rebuttal, the supervisor's decision, and scores."""

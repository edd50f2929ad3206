"""The top floor: the chart as one composition (record, codes, checks, return note, ...).

Every caller that shows a chart (the coder's workbench and API, QA review, break-glass) gets
it from `service.open_chart`: one audited view, the work item read once, the data key
unwrapped once. This package imports the domains below it; none of them imports it.
"""

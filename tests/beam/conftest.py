import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing import test_pipeline


@pytest.fixture
def pipeline():
    """A TestPipeline on the FnApiRunner (no Prism download attempt, same online/offline)."""
    return test_pipeline.TestPipeline(runner="FnApiRunner", options=PipelineOptions([]))

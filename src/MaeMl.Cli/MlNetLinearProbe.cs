using System.Diagnostics;
using MaeMl.MLNet;
using MaeMl.Onnx;
using Microsoft.ML;
using Microsoft.ML.Data;

namespace MaeMl.Cli;

/// <summary>The ML.NET side of the CLI: the featurizing pipeline (LoadImages + ApplyMaeEncoder) and <c>linprobe --trainer mlnet</c>,
/// a maximum-entropy classifier on frozen encoder features.</summary>
public static class MlNetLinearProbe
{
    sealed class FeatureRow
    {
        public string Label { get; set; } = "";
        public float[] Features { get; set; } = [];
    }

    /// <summary>Image rows (path, label) as an ML.NET data view.</summary>
    public static IDataView Images(MLContext ml, IEnumerable<(string Path, string Label)> files) =>
        ml.Data.LoadFromEnumerable(files.Select(f => new CliHelpers.ImageRow { ImagePath = f.Path, Label = f.Label }));

    /// <summary>LoadImages + ApplyMaeEncoder: a "Features" column from the image rows of <see cref="Images"/>.</summary>
    public static IEstimator<ITransformer> Featurizer(MLContext ml, string onnx, EncoderPooling pooling, int? intraOpThreads = null) =>
        ml.Transforms.LoadImages("Image", null, nameof(CliHelpers.ImageRow.ImagePath))
            .Append(ml.Transforms.ApplyMaeEncoder(new MaeEncoderOptions
            {
                OutputColumnName = "Features", InputColumnName = "Image", ModelFile = onnx, Pooling = pooling, IntraOpThreads = intraOpThreads,
            }));

    /// <summary>Featurizes train (and val) with the exported encoder <paramref name="onnx"/>, fits the classifier on the train
    /// features and prints train and val accuracy and the featurization throughput.</summary>
    /// <param name="trainer">"mlnet" (LbfgsMaximumEntropy) or "mlnet-sdca" (SdcaMaximumEntropy).</param>
    /// <param name="featurizer">"mlnet" (the LoadImages + ApplyMaeEncoder pipeline, row by row) or "batched" (MaeEncoder over ONNX Runtime).</param>
    public static void Run(List<(string Path, string Label)> train, List<(string Path, string Label)>? val, string onnx, EncoderPooling pooling,
        string trainer, string featurizer, int batchSize, int threads)
    {
        var ml = new MLContext(seed: 0);
        var watch = Stopwatch.StartNew();
        var trainRows = Featurize(ml, train, onnx, pooling, featurizer, batchSize, threads);
        var valRows = val is null ? [] : Featurize(ml, val, onnx, pooling, featurizer, batchSize, threads);
        var seconds = watch.Elapsed.TotalSeconds;
        int dim = trainRows[0].Features.Length, n = trainRows.Count + valRows.Count;
        Console.WriteLine($"featurized {n} images ({dim} features each) in {seconds:F1} s: {n / seconds:F1} images/s");

        var schema = SchemaDefinition.Create(typeof(FeatureRow));
        schema[nameof(FeatureRow.Features)].ColumnType = new VectorDataViewType(NumberDataViewType.Single, dim);
        var trainData = ml.Data.LoadFromEnumerable(trainRows, schema);
        var pipeline = ml.Transforms.Conversion.MapValueToKey("Label")
            .Append(ml.Transforms.NormalizeMeanVariance("Features"))
            .AppendCacheCheckpoint(ml);
        IEstimator<ITransformer> full = trainer == "mlnet-sdca"
            ? pipeline.Append(ml.MulticlassClassification.Trainers.SdcaMaximumEntropy())
            : pipeline.Append(ml.MulticlassClassification.Trainers.LbfgsMaximumEntropy());
        watch.Restart();
        var trained = full.Fit(trainData);
        var trainSeconds = watch.Elapsed.TotalSeconds;
        var trainMetrics = ml.MulticlassClassification.Evaluate(trained.Transform(trainData));
        Console.WriteLine($"trained in {trainSeconds:F1} s; train accuracy {trainMetrics.MicroAccuracy:P2}");
        if (valRows.Count == 0) return;
        var metrics = ml.MulticlassClassification.Evaluate(trained.Transform(ml.Data.LoadFromEnumerable(valRows, schema)));
        Console.WriteLine($"val accuracy {metrics.MicroAccuracy:P2} (macro {metrics.MacroAccuracy:P2}, log-loss {metrics.LogLoss:F3})");
    }

    static List<FeatureRow> Featurize(MLContext ml, List<(string Path, string Label)> files, string onnx, EncoderPooling pooling, string featurizer, int batchSize, int threads)
    {
        if (featurizer == "batched")
        {
            using var encoder = MaeEncoder.Open(onnx, pooling, intraOpThreads: threads);
            var features = encoder.EmbedFiles(files.Select(f => f.Path).ToList(), batchSize);
            return files.Select((f, i) => new FeatureRow { Label = f.Label, Features = features[i] }).ToList();
        }
        var view = Images(ml, files);
        var featurized = Featurizer(ml, onnx, pooling).Fit(view).Transform(view);
        var labels = featurized.GetColumn<string>("Label").ToList();
        var vectors = featurized.GetColumn<VBuffer<float>>("Features").Select(v => v.DenseValues().ToArray()).ToList();
        return labels.Select((l, i) => new FeatureRow { Label = l, Features = vectors[i] }).ToList();
    }
}

using System.CommandLine;
using System.Diagnostics;
using MaeMl.MLNet;
using MaeMl.Onnx;
using Microsoft.ML;
using Microsoft.ML.Data;

namespace MaeMl.Cli.Commands;

/// <summary><c>maeml linear-eval</c>: accuracy of an ML.NET linear classifier on frozen encoder features.</summary>
public static class LinearEvalCommand
{
    sealed class FeatureRow
    {
        public string Label { get; set; } = "";
        public float[] Features { get; set; } = [];
    }

    public static Command Create()
    {
        var command = new Command("linear-eval", "Linear probe: featurize train and test images (class folders) with the frozen encoder, train an ML.NET maximum-entropy classifier on the train features, print test accuracy and featurization throughput.");
        var source = new EncoderSource();
        source.AddTo(command);
        var train = new Option<string>("--train") { Description = "Training images in class folders.", Required = true };
        var test = new Option<string>("--test") { Description = "Test images in class folders.", Required = true };
        var trainLimit = new Option<int>("--train-limit") { Description = "Seeded random subset of the training images (0 = all).", DefaultValueFactory = _ => 10000 };
        var testLimit = new Option<int>("--test-limit") { Description = "Seeded random subset of the test images (0 = all).", DefaultValueFactory = _ => 0 };
        var pooling = new Option<string>("--pooling") { Description = "cls or mean.", DefaultValueFactory = _ => "cls" };
        var trainer = new Option<string>("--trainer") { Description = "lbfgs (LbfgsMaximumEntropy) or sdca (SdcaMaximumEntropy).", DefaultValueFactory = _ => "lbfgs" };
        var featurizer = new Option<string>("--featurizer") { Description = "mlnet (LoadImages + ApplyMaeEncoder pipeline) or batched (MaeEncoder over ONNX Runtime, same model, faster).", DefaultValueFactory = _ => "mlnet" };
        var batch = new Option<int>("--batch-size") { Description = "Batch size with --featurizer batched.", DefaultValueFactory = _ => 64 };
        foreach (var o in new Option[] { train, test, trainLimit, testLimit, pooling, trainer, featurizer, batch }) command.Options.Add(o);
        command.SetAction(parse =>
        {
            var pool = ExportOnnxCommand.ParsePooling(parse.GetValue(pooling)!);
            if (pool == EncoderPooling.Tokens) throw new CliException("linear-eval needs one vector per image: use --pooling cls or mean");
            var trainerName = parse.GetValue(trainer)!.ToLowerInvariant();
            if (trainerName is not ("lbfgs" or "sdca")) throw new CliException($"unknown trainer '{trainerName}' (use lbfgs or sdca)");
            var mode = parse.GetValue(featurizer)!.ToLowerInvariant();
            if (mode is not ("mlnet" or "batched")) throw new CliException($"unknown featurizer '{mode}' (use mlnet or batched)");
            var trainFiles = ImageFolderListing.List(parse.GetValue(train)!, parse.GetValue(trainLimit), seed: 0);
            var testFiles = ImageFolderListing.List(parse.GetValue(test)!, parse.GetValue(testLimit), seed: 0);
            var (model, description) = source.Load(parse);
            var onnx = Path.Combine(Path.GetTempPath(), $"maeml-linear-eval-{Environment.ProcessId}.onnx");
            using (model) VitEncoderOnnxExporter.Export(model, onnx, new VitEncoderOnnxOptions { Poolings = [pool] });
            Console.WriteLine(description);
            Console.WriteLine($"train {trainFiles.Count} images, test {testFiles.Count} images, pooling {pool}, featurizer {mode}, trainer {trainerName}");
            try
            {
                var ml = new MLContext(seed: 0);
                var watch = Stopwatch.StartNew();
                var trainRows = Featurize(ml, trainFiles, onnx, pool, mode, parse.GetValue(batch));
                var testRows = Featurize(ml, testFiles, onnx, pool, mode, parse.GetValue(batch));
                var seconds = watch.Elapsed.TotalSeconds;
                int dim = trainRows[0].Features.Length;
                Console.WriteLine($"featurized {trainRows.Count + testRows.Count} images ({dim} features each) in {seconds:F1} s: {(trainRows.Count + testRows.Count) / seconds:F1} images/s");

                var schema = SchemaDefinition.Create(typeof(FeatureRow));
                schema[nameof(FeatureRow.Features)].ColumnType = new VectorDataViewType(NumberDataViewType.Single, dim);
                var trainData = ml.Data.LoadFromEnumerable(trainRows, schema);
                var testData = ml.Data.LoadFromEnumerable(testRows, schema);
                var pipeline = ml.Transforms.Conversion.MapValueToKey("Label")
                    .Append(ml.Transforms.NormalizeMeanVariance("Features"))
                    .AppendCacheCheckpoint(ml);
                IEstimator<ITransformer> full = trainerName == "sdca"
                    ? pipeline.Append(ml.MulticlassClassification.Trainers.SdcaMaximumEntropy())
                    : pipeline.Append(ml.MulticlassClassification.Trainers.LbfgsMaximumEntropy());
                watch.Restart();
                var trained = full.Fit(trainData);
                var trainSeconds = watch.Elapsed.TotalSeconds;
                var metrics = ml.MulticlassClassification.Evaluate(trained.Transform(testData));
                var trainMetrics = ml.MulticlassClassification.Evaluate(trained.Transform(trainData));
                Console.WriteLine($"trained in {trainSeconds:F1} s; train accuracy {trainMetrics.MicroAccuracy:P2}");
                Console.WriteLine($"test accuracy {metrics.MicroAccuracy:P2} (macro {metrics.MacroAccuracy:P2}, log-loss {metrics.LogLoss:F3})");
            }
            finally { File.Delete(onnx); }
            return 0;
        });
        return command;
    }

    static List<FeatureRow> Featurize(MLContext ml, List<(string Path, string Label)> files, string onnx, EncoderPooling pooling, string mode, int batchSize)
    {
        if (mode == "batched")
        {
            using var encoder = MaeEncoder.Open(onnx, pooling);
            var features = encoder.EmbedFiles(files.Select(f => f.Path).ToList(), batchSize);
            return files.Select((f, i) => new FeatureRow { Label = f.Label, Features = features[i] }).ToList();
        }
        var view = ml.Data.LoadFromEnumerable(files.Select(f => new BenchFeaturizeCommand.ImageFile { ImagePath = f.Path, Label = f.Label }));
        var featurized = ml.Transforms.LoadImages("Image", null, nameof(BenchFeaturizeCommand.ImageFile.ImagePath))
            .Append(ml.Transforms.ApplyMaeEncoder("Features", "Image", onnx, pooling)).Fit(view).Transform(view);
        var labels = featurized.GetColumn<string>("Label").ToList();
        var vectors = featurized.GetColumn<VBuffer<float>>("Features").Select(v => v.DenseValues().ToArray()).ToList();
        return labels.Select((l, i) => new FeatureRow { Label = l, Features = vectors[i] }).ToList();
    }
}

using System.CommandLine;
using System.Diagnostics;
using MaeMl.Checkpoints;
using MaeMl.Detection;
using MaeMl.Onnx;
using MaeMl.Segmentation;

namespace MaeMl.Cli.Commands;

/// <summary><c>maeml export-onnx</c>: writes the encoder as an ONNX model for ONNX Runtime and ML.NET, or a detector / segmenter
/// file (<c>detect-train</c> / <c>segment-train --out</c>) as the graph <c>ApplyMaeDetector</c> / <c>ApplyMaeSegmenter</c> serve.</summary>
public static class ExportOnnxCommand
{
    public static Command Create()
    {
        var command = new Command("export-onnx", "Export the ViT encoder (with ImageNet preprocessing, dynamic batch) to ONNX for ONNX Runtime and ML.NET's ApplyMaeEncoder; " +
                                                 "a detector or segmenter file (detect-train / segment-train --out) is exported with its post-processing for ApplyMaeDetector / ApplyMaeSegmenter.");
        var source = new EncoderSource();
        source.AddTo(command);
        var output = new Option<string>(Vocabulary.Out) { Description = "ONNX file to write.", Required = true };
        var pooling = new Option<string>("--pooling") { Description = "Outputs: cls, mean, tokens, a comma-separated list, or all.", DefaultValueFactory = _ => "all" };
        var noPreprocessing = new Option<bool>("--no-preprocessing") { Description = "Take already normalised pixels instead of 0..255 RGB (not usable by ApplyMaeEncoder)." };
        var opset = new Option<int>("--opset") { Description = "ONNX opset (17 or newer).", DefaultValueFactory = _ => new VitEncoderOnnxOptions().Opset };
        var verify = new Option<int>("--verify") { Description = "Compare ONNX Runtime with TorchSharp on this many random images and print the max abs difference (dense models: raw outputs, selection and class maps).", DefaultValueFactory = _ => 0 };
        var threads = Vocabulary.ThreadsOption("also of the --verify run");
        foreach (var o in new Option[] { output, pooling, noPreprocessing, opset, verify, threads }) command.Options.Add(o);
        command.SetAction(parse =>
        {
            Vocabulary.ApplyThreads(parse.GetValue(threads));
            // a whole model (detector / segmenter, classifier) is exported as it is: the encoder-only options given are refused by name
            void RefuseEncoderOptions(string what, params Option[] encoderOnly)
            {
                foreach (var o in encoderOnly)
                    if (parse.GetResult(o) is { Implicit: false }) throw new CliException($"{o.Name} is for encoders; {what}");
            }
            if (parse.GetValue(source.Weights) is { } file && DenseModelFile.IsDenseModelFile(file))
            {
                RefuseEncoderOptions($"'{file}' is a detection/segmentation model, exported whole (with preprocessing, opset 17)", source.Model, pooling, noPreprocessing, opset);
                return ExportDense(file, parse.GetValue(output)!, parse.GetValue(verify));
            }
            if (parse.GetValue(source.Weights) is { } classifierFile && ClassifierCheckpoint.IsClassifierCheckpoint(classifierFile))
            {
                RefuseEncoderOptions($"'{classifierFile}' is a classifier, exported with its head and preprocessing", source.Model, pooling, noPreprocessing);
                return ExportClassifier(classifierFile, parse.GetValue(output)!, parse.GetValue(opset), parse.GetValue(verify));
            }
            var poolings = CliHelpers.Poolings(parse.GetValue(pooling)!);
            var (model, description) = source.Load(parse);
            using var _ = model;
            var path = parse.GetValue(output)!;
            var watch = Stopwatch.StartNew();
            VitEncoderOnnxExporter.Export(model, path, new VitEncoderOnnxOptions
            {
                Poolings = poolings,
                IncludePreprocessing = !parse.GetValue(noPreprocessing),
                Opset = parse.GetValue(opset),
            });
            Console.WriteLine($"{description}");
            Console.WriteLine($"wrote {path} ({new FileInfo(path).Length / 1e6:F1} MB, outputs {string.Join(", ", poolings.Select(EncoderOnnxNames.Output))}) in {watch.Elapsed.TotalSeconds:F1} s");
            int n = parse.GetValue(verify);
            if (n > 0)
            {
                if (parse.GetValue(noPreprocessing)) throw new CliException("--verify needs the preprocessing in the graph");
                watch.Restart();
                var errors = EncoderOnnxParity.MaxAbsDifference(model, path, n);
                foreach (var (p, err) in errors) Console.WriteLine($"parity ONNX Runtime vs TorchSharp, {n} random images, {p}: max abs {err:E2}");
                Console.WriteLine($"verified in {watch.Elapsed.TotalSeconds:F1} s");
                if (errors.Values.Any(e => !(e <= 1e-4))) { Console.Error.WriteLine("maeml: parity above 1e-4"); return 1; }
            }
            return 0;
        });
        return command;
    }

    /// <summary>A fine-tuned classifier: encoder + head with preprocessing (logits and probabilities), the class names in the metadata, as
    /// <c>ApplyMaeClassifier</c> serves it.</summary>
    static int ExportClassifier(string file, string path, int opset, int verify)
    {
        var watch = Stopwatch.StartNew();
        var (model, header) = ClassifierCheckpoint.Load(file);
        using var _ = model;
        var names = header.ClassNames.Count == model.Config.NumClasses ? header.ClassNames : null;
        VitEncoderOnnxExporter.ExportClassifier(model, path, new VitEncoderOnnxOptions { ClassNames = names, Opset = opset });
        Console.WriteLine($"wrote {path} ({new FileInfo(path).Length / 1e6:F1} MB, classifier of {model.Config.NumClasses} classes" +
                          (names is null ? "" : $" ({string.Join(", ", names.Take(10))}{(names.Count > 10 ? ", ..." : "")})") +
                          $": input {EncoderOnnxNames.Pixels}, outputs {EncoderOnnxNames.Logits}, {EncoderOnnxNames.Probabilities}) in {watch.Elapsed.TotalSeconds:F1} s");
        if (verify > 0)
        {
            float err = EncoderOnnxParity.ClassifierMaxAbsDifference(model, path, verify);
            Console.WriteLine($"parity ONNX Runtime vs TorchSharp, {verify} random images, logits: max abs {err:E2}");
            if (!(err <= 1e-4)) { Console.Error.WriteLine("maeml: parity above 1e-4"); return 1; }
        }
        return 0;
    }

    /// <summary>A detector (graph with threshold, NMS, cap and boxes in pixels of the original image) or a segmenter (class map at the
    /// model's size, probabilities and the class map at the original image's size), with the file's class names in the metadata.</summary>
    static int ExportDense(string file, string path, int verify)
    {
        var kind = DenseModelFile.ReadHeader(file).Kind;
        var watch = Stopwatch.StartNew();
        bool passed = true;
        if (kind == "detection")
        {
            var (model, header) = DetectionModelFile.Load(file);
            using var _ = model;
            DetectionOnnxExporter.Export(model, path, header.ClassNames.Count == model.Config.NumClasses ? header.ClassNames : null);
            Console.WriteLine(Reports.Describe(model.Config));
            Console.WriteLine($"wrote {path} ({new FileInfo(path).Length / 1e6:F1} MB, detector: inputs {DetectionOnnxNames.Pixels}, {DetectionOnnxNames.ImageSize}; outputs " +
                              $"{DetectionOnnxNames.Boxes}, {DetectionOnnxNames.Scores}, {DetectionOnnxNames.Labels}, {DetectionOnnxNames.Count} and the raw ones) in {watch.Elapsed.TotalSeconds:F1} s");
            if (verify > 0)
            {
                watch.Restart();
                var r = DetectionOnnxParity.Check(model, path, verify);
                Console.WriteLine($"parity ONNX Runtime vs TorchSharp, {verify} random images: raw scores max abs {r.MaxRawScoreDiff:E2}, raw boxes max abs {r.MaxRawBoxDiff:E2} px; " +
                                  $"selection {(r.SelectionExact ? "identical to" : "DIFFERS from")} FcosPostprocess on the graph's raw outputs; " +
                                  $"detections: {r.OnnxDetections} ONNX, {r.TorchSharpDetections} TorchSharp, {r.ImagesMatchingTorchSharp}/{r.Images} images identical");
                passed = r.Passed(model.Config.Encoder.ImageSize);
            }
        }
        else
        {
            var (model, header) = SegmentationModelFile.Load(file);
            using var _ = model;
            SegmentationOnnxExporter.Export(model, path, new SegmentationOnnxOptions
            {
                IncludeProbabilities = true, ImageSizeOutput = true, ClassNames = header.ClassNames.Count == model.Config.NumClasses ? header.ClassNames : null,
            });
            var c = model.Config;
            Console.WriteLine($"segmenter: {c.Head} head, {c.NumClasses} classes, input {c.Encoder.InputSize}, ignore {header.IgnoreIndex}");
            Console.WriteLine($"wrote {path} ({new FileInfo(path).Length / 1e6:F1} MB, inputs {SegmentationOnnxNames.Pixels}, {SegmentationOnnxNames.ImageSize}; outputs " +
                              $"{SegmentationOnnxNames.ClassMap}, {SegmentationOnnxNames.Probabilities}, {SegmentationOnnxNames.ImageClassMap}) in {watch.Elapsed.TotalSeconds:F1} s");
            if (verify > 0)
            {
                watch.Restart();
                var r = SegmentationOnnxParity.Check(model, path, verify);
                Console.WriteLine($"parity ONNX Runtime vs TorchSharp, {verify} random images: probabilities max abs {r.MaxProbabilityDiff:E2}; class map {r.ModelPixels - r.ModelPixelsDiffering}/{r.ModelPixels} pixels identical " +
                                  $"({r.DifferingNotTied} differing pixels not at a tie); at {r.Width}x{r.Height}: {r.ImagePixels - r.ImagePixelsDiffering}/{r.ImagePixels} identical, " +
                                  $"resize {(r.ResizeExact ? "exact" : "NOT exact")}");
                passed = r.Passed;
            }
        }
        if (verify > 0)
        {
            Console.WriteLine($"verified in {watch.Elapsed.TotalSeconds:F1} s");
            if (!passed) { Console.Error.WriteLine("maeml: ONNX Runtime and TorchSharp disagree beyond float rounding"); return 1; }
        }
        return 0;
    }
}

using System.Text.Json;
using MaeMl.Detection;
using MaeMl.Model;
using MaeMl.Onnx;
using MaeMl.Segmentation;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Transforms.Image;
using Onnx;

namespace MaeMl.MLNet;

/// <summary>The output columns of a detector chain (ML.NET's object-detection names by default).</summary>
internal sealed record DetectorColumns(string Image, string PredictedLabel, string Score, string PredictedBoundingBoxes);

/// <summary>The output columns of a segmenter chain.</summary>
internal sealed record SegmenterColumns(string Image, string PredictedMask, string? PredictedLabel);

/// <summary>
/// The ML.NET chains that serve the exported dense models, shared by the trainers (after <c>Fit</c>) and by the estimators that
/// apply an exported <c>.onnx</c> file (<see cref="MaeDetectorScoringEstimator"/>, <see cref="MaeSegmenterScoringEstimator"/>):
/// the image copied to <see cref="ImageSizeMappingFactory.ImageColumn"/>, its size (<see cref="ImageSizeMappingFactory"/>), the image
/// stretched to the model's W x H as RGB planes 0..255 (<see cref="ImagePixels"/>, <c>Fill</c>), <c>ApplyOnnxModel</c> from the model's bytes,
/// then built-in conversions, copies and drops. Every piece but the size mapping is one of ML.NET's own transformers.
/// </summary>
internal static class DenseScoring
{
    internal const string DetectionResized = "MaeDetection.Resized";
    internal const string DetectionLabelNames = "MaeDetection.LabelNames";
    internal const string SegmentationResized = "MaeSegmentation.Resized";
    internal const string SegmentationLabelNames = "MaeSegmentation.LabelNames";

    /// <summary>ResizeImages (Fill, W x H) + ExtractPixels (RGB planes 0..255) into <see cref="EncoderOnnxNames.Pixels"/>.</summary>
    internal static IEstimator<ITransformer> Stretch(MLContext ml, string imageColumn, InputSize size, string resizedColumn) =>
        ImagePixels.Chain(ml.Transforms, imageColumn, size, resizedColumn, EncoderOnnxNames.Pixels, ImageResizingEstimator.ResizingKind.Fill);

    /// <summary>
    /// The preprocessing: the image copied to <see cref="ImageSizeMappingFactory.ImageColumn"/>, its size
    /// (<see cref="ImageSizeMappingFactory"/>, into <see cref="DetectionOnnxNames.ImageSize"/>) and <see cref="Stretch"/>. Fitted piece by
    /// piece: an <c>EstimatorChain</c> would check the <c>CustomMapping</c>'s image column with <c>CustomMappingEstimator.GetOutputSchema</c>,
    /// which compares the (not shared) image types by reference and always fails in ML.NET 5.0.1.
    /// </summary>
    internal static TransformerChain<ITransformer> FitPreprocessing(MLContext ml, IDataView input, string imageColumn, InputSize size, string resizedColumn)
    {
        var t = ml.Transforms;
        var copy = t.CopyColumns(ImageSizeMappingFactory.ImageColumn, imageColumn).Fit(input);
        var copied = copy.Transform(input);
        var imageSize = t.CustomMapping<ImageSizeMappingFactory.Input, ImageSizeMappingFactory.Output>(ImageSizeMappingFactory.Map, ImageSizeMappingFactory.ContractName).Fit(copied);
        var sized = imageSize.Transform(copied);
        var pixels = Stretch(ml, imageColumn, size, resizedColumn).Fit(sized);
        return new TransformerChain<ITransformer>(copy, imageSize, pixels);
    }

    // ---------------------------------------------------------------- detector

    /// <summary>The fitted detector chain over an exported detector (<see cref="DetectionOnnxExporter"/>), keys numbered as <paramref name="classNames"/>.</summary>
    internal static ITransformer FitDetector(MLContext ml, IDataView input, byte[] onnx, IReadOnlyList<string> classNames, int size, DetectorColumns c, int? device, bool fallbackToCpu)
    {
        var preprocessing = FitPreprocessing(ml, input, c.Image, size, DetectionResized);
        var rest = DetectorInference(ml, onnx, classNames, c, [DetectionOnnxNames.Pixels, DetectionOnnxNames.ImageSize],
            [ImageSizeMappingFactory.ImageColumn, DetectionOnnxNames.ImageSize], device, fallbackToCpu).Fit(preprocessing.Transform(input));
        return new TransformerChain<ITransformer>(preprocessing, rest);
    }

    /// <summary>From the preprocessed columns on: <c>ApplyOnnxModel</c>, <c>MapValue</c> (index to class name) + <c>MapValueToKey</c> (the
    /// names as keys, numbered as <paramref name="classNames"/>), the output copies and the drops.</summary>
    /// <remarks>The model is handed over as bytes (held by the transformer), so no file has to outlive the call.</remarks>
    static IEstimator<ITransformer> DetectorInference(MLContext ml, byte[] onnx, IReadOnlyList<string> classNames, DetectorColumns c, string[] onnxInputs, string[] alsoDrop,
        int? device, bool fallbackToCpu)
    {
        var t = ml.Transforms;
        var lookup = ml.Data.LoadFromEnumerable(classNames.Select((n, i) => new LabelLookup { Index = i, Name = n }));
        var keyData = ml.Data.LoadFromEnumerable(classNames.Select(n => new KeyName { Name = n }));
        return t.ApplyOnnxModel([DetectionOnnxNames.Boxes, DetectionOnnxNames.Scores, DetectionOnnxNames.Labels], onnxInputs,
                new MemoryStream(onnx, writable: false), device, fallbackToCpu)
            .Append(t.Conversion.MapValue(DetectionLabelNames, lookup, lookup.Schema[nameof(LabelLookup.Index)], lookup.Schema[nameof(LabelLookup.Name)], DetectionOnnxNames.Labels))
            .Append(t.Conversion.MapValueToKey(c.PredictedLabel, DetectionLabelNames, keyData: keyData))
            .Append(t.CopyColumns(c.Score, DetectionOnnxNames.Scores))
            .Append(t.CopyColumns(c.PredictedBoundingBoxes, DetectionOnnxNames.Boxes))
            .Append(t.DropColumns([.. alsoDrop, DetectionResized, DetectionOnnxNames.Pixels, DetectionOnnxNames.Boxes, DetectionOnnxNames.Scores, DetectionOnnxNames.Labels, DetectionLabelNames]));
    }

    sealed class LabelLookup { public long Index { get; set; } public string Name { get; set; } = ""; }
    sealed class KeyName { public string Name { get; set; } = ""; }

    /// <summary>The detector chain's output columns, from its built-in estimators over a stand-in ONNX model with the detector's outputs
    /// (the image-size mapping adds a column the chain drops again, so it is left out here).</summary>
    internal static SchemaShape DetectorOutputSchema(MLContext ml, SchemaShape inputSchema, int size, DetectorColumns c, IReadOnlyList<string> classNames)
    {
        var g = new OnnxGraphBuilder("maeml_detector_schema");
        g.Input(DetectionOnnxNames.Pixels, "batch", 3, size, size);
        g.Output(g.Node("Identity", [g.Initializer("no_boxes", ReadOnlySpan<float>.Empty, 1, 0, 4)], "boxes"), DetectionOnnxNames.Boxes, "batch", "detections", 4);
        g.Output(g.Node("Identity", [g.Initializer("no_scores", ReadOnlySpan<float>.Empty, 1, 0)], "scores"), DetectionOnnxNames.Scores, "batch", "detections");
        var noLabels = g.Node("Cast", [g.Initializer("no_labels", ReadOnlySpan<float>.Empty, 1, 0)], "labels", OnnxGraphBuilder.Attr("to", 7L));
        g.Output(noLabels, DetectionOnnxNames.Labels, TensorProto.Types.DataType.Int64, "batch", "detections");
        var stub = Google.Protobuf.MessageExtensions.ToByteArray(g.ToModel(17));
        return Stretch(ml, c.Image, size, DetectionResized).Append(DetectorInference(ml, stub, classNames, c, [DetectionOnnxNames.Pixels], [], null, true))
            .GetOutputSchema(inputSchema);
    }

    // ---------------------------------------------------------------- segmenter

    /// <summary>The fitted segmenter chain over a segmenter exported with <see cref="SegmentationOnnxOptions.ImageSizeOutput"/>: the class
    /// map at the input image's size in <see cref="SegmenterColumns.PredictedMask"/> (uint class ids, row-major H x W) and, when asked,
    /// the same as keys whose values are <paramref name="classNames"/> (class id i is key i + 1).</summary>
    internal static ITransformer FitSegmenter(MLContext ml, IDataView input, byte[] onnx, IReadOnlyList<string> classNames, InputSize size, SegmenterColumns c, int? device, bool fallbackToCpu)
    {
        var preprocessing = FitPreprocessing(ml, input, c.Image, size, SegmentationResized);
        var rest = ml.Transforms.CopyColumns(SegmentationOnnxNames.ImageSize, DetectionOnnxNames.ImageSize)
            .Append(SegmenterInference(ml, onnx, classNames, c, [SegmentationOnnxNames.Pixels, SegmentationOnnxNames.ImageSize],
                [ImageSizeMappingFactory.ImageColumn, DetectionOnnxNames.ImageSize, SegmentationOnnxNames.ImageSize], device, fallbackToCpu))
            .Fit(preprocessing.Transform(input));
        return new TransformerChain<ITransformer>(preprocessing, rest);
    }

    static IEstimator<ITransformer> SegmenterInference(MLContext ml, byte[] onnx, IReadOnlyList<string> classNames, SegmenterColumns c, string[] onnxInputs, string[] alsoDrop,
        int? device, bool fallbackToCpu)
    {
        var t = ml.Transforms;
        IEstimator<ITransformer> chain = t.ApplyOnnxModel([SegmentationOnnxNames.ImageClassMap], onnxInputs, new MemoryStream(onnx, writable: false), device, fallbackToCpu)
            .Append(t.CopyColumns(c.PredictedMask, SegmentationOnnxNames.ImageClassMap));
        if (c.PredictedLabel is { } label)
        {
            if (classNames.Distinct().Count() != classNames.Count) throw new ArgumentException($"The class names must be unique to become key values ({string.Join(", ", classNames)})");
            // id -> name, then the names as keys numbered in class order (class id i -> key i + 1, key values the names). MapValue's own
            // treatValuesAsKeyType does not give keys for a vector input (ML.NET 5.0.1 types its output as plain uint then).
            var pairs = classNames.Select((n, i) => new KeyValuePair<uint, string>((uint)i, n));
            var keyData = ml.Data.LoadFromEnumerable(classNames.Select(n => new KeyName { Name = n }));
            chain = chain.Append(t.Conversion.MapValue(SegmentationLabelNames, pairs, c.PredictedMask))
                .Append(t.Conversion.MapValueToKey(label, SegmentationLabelNames, keyData: keyData));
            alsoDrop = [.. alsoDrop, SegmentationLabelNames];
        }
        return chain.Append(t.DropColumns([.. alsoDrop, SegmentationResized, SegmentationOnnxNames.Pixels, SegmentationOnnxNames.ImageClassMap]));
    }

    /// <summary>The segmenter chain's output columns, over a stand-in ONNX model with the segmenter's output.</summary>
    internal static SchemaShape SegmenterOutputSchema(MLContext ml, SchemaShape inputSchema, InputSize size, SegmenterColumns c, IReadOnlyList<string> classNames)
    {
        var g = new OnnxGraphBuilder("maeml_segmenter_schema");
        g.Input(SegmentationOnnxNames.Pixels, "batch", 3, size.Height, size.Width);
        var none = g.Node("Cast", [g.Initializer("no_pixels", ReadOnlySpan<float>.Empty, 1, 0, 0)], "class_ids", OnnxGraphBuilder.Attr("to", 12L));
        g.Output(none, SegmentationOnnxNames.ImageClassMap, TensorProto.Types.DataType.Uint32, "batch", "height", "width");
        var stub = Google.Protobuf.MessageExtensions.ToByteArray(g.ToModel(17));
        return Stretch(ml, c.Image, size, SegmentationResized).Append(SegmenterInference(ml, stub, classNames, c, [SegmentationOnnxNames.Pixels], [], null, true))
            .GetOutputSchema(inputSchema);
    }

    // ---------------------------------------------------------------- files

    /// <summary>An exported dense model: its bytes, input size (W x H) and classes (from the <c>maeml.*</c> metadata).</summary>
    internal sealed record DenseOnnxFile(byte[] Bytes, InputSize ImageSize, int NumClasses, IReadOnlyList<string>? ClassNames, IReadOnlySet<string> Inputs, IReadOnlySet<string> Outputs);

    /// <summary>Reads an ONNX model MaeMl exported for <paramref name="task"/> (<c>object_detection</c> or <c>semantic_segmentation</c>).</summary>
    /// <exception cref="FileNotFoundException">No such file.</exception>
    /// <exception cref="InvalidDataException">Not an ONNX model of that task.</exception>
    internal static DenseOnnxFile ReadOnnx(string path, string task)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"ONNX model '{path}' does not exist", path);
        Files.FileKind.RequireRegular(path, "ONNX model");
        return ParseOnnx(File.ReadAllBytes(path), path, task);
    }

    /// <summary>As <see cref="ReadOnnx"/>, from the model's bytes (<paramref name="path"/> names it in messages).</summary>
    internal static DenseOnnxFile ParseOnnx(byte[] bytes, string path, string task)
    {
        ModelProto model;
        try { model = ModelProto.Parser.ParseFrom(bytes); }
        catch (Google.Protobuf.InvalidProtocolBufferException e) { throw new InvalidDataException($"'{path}' is not an ONNX model ({e.Message})", e); }
        var metadata = model.MetadataProps.GroupBy(p => p.Key).ToDictionary(g => g.Key, g => g.Last().Value);
        var kind = metadata.GetValueOrDefault("maeml.task");
        if (kind != task) throw new InvalidDataException($"'{path}' is {(kind is null ? "not a MaeMl model" : $"a MaeMl {kind} model")}, not a {task} model (maeml.task)");
        var inputs = model.Graph.Input.Select(i => i.Name).ToHashSet();
        var outputs = model.Graph.Output.Select(o => o.Name).ToHashSet();
        int size = int.TryParse(metadata.GetValueOrDefault("maeml.image_size"), out var s) ? s
            : (int)(model.Graph.Input.FirstOrDefault(i => i.Name == EncoderOnnxNames.Pixels)?.Type.TensorType.Shape.Dim.LastOrDefault()?.DimValue ?? 0);
        if (size <= 0) throw new InvalidDataException($"'{path}' names no input size (maeml.image_size)");
        int height = metadata.GetValueOrDefault("maeml.image_height") is not { } h ? size   // written for a non-square input (maeml.image_size is then the width)
            : int.TryParse(h, out var hv) && hv > 0 ? hv : throw new InvalidDataException($"'{path}': maeml.image_height '{h}' is not a positive number");
        int classes = int.TryParse(metadata.GetValueOrDefault("maeml.num_classes"), out var k) ? k : 0;
        IReadOnlyList<string>? names = null;
        if (metadata.GetValueOrDefault("maeml.class_names") is { } json)
        {
            try { names = JsonSerializer.Deserialize<List<string>>(json); }
            catch (JsonException e) { throw new InvalidDataException($"'{path}': unreadable maeml.class_names ({e.Message})", e); }
        }
        return new DenseOnnxFile(bytes, new InputSize(size, height), classes, names, inputs, outputs);
    }

    /// <summary>The class names to number the keys with: <paramref name="given"/>, else the file's, else "0", "1", ...</summary>
    internal static IReadOnlyList<string> ClassNames(IReadOnlyList<string>? given, DenseOnnxFile file, string path)
    {
        var names = given ?? file.ClassNames;
        if (names is null)
        {
            if (file.NumClasses <= 0) throw new InvalidDataException($"'{path}' names neither its classes nor their number (maeml.class_names, maeml.num_classes): give the class names");
            return Enumerable.Range(0, file.NumClasses).Select(i => i.ToString()).ToList();
        }
        if (file.NumClasses > 0 && names.Count != file.NumClasses)
            throw new ArgumentException($"{names.Count} class names for the {file.NumClasses} classes of '{path}'");
        if (names.Count == 0) throw new ArgumentException("No class names");
        return names;
    }
}

using System.Reflection;
using MaeMl.Model;
using MaeMl.Onnx;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;
using Microsoft.ML.Trainers;
using Onnx;

namespace MaeMl.MLNet;

/// <summary>The scoring chain of an exported MaeMl classifier (encoder + head), shared by the trainer's <c>Fit</c>
/// (<see cref="MaeImageClassificationEstimator"/>) and <see cref="MaeClassifierCatalog.ApplyMaeClassifier"/>: resize + pixels, the ONNX
/// graph (from its bytes, held by the transformer), ML.NET's multiclass scorer over the logits, and the temporary columns dropped.</summary>
internal static class ClassifierScoring
{
    internal const string ScoreColumn = "Score";
    internal const string PredictedLabelColumn = "PredictedLabel";

    /// <summary>The fitted chain over <paramref name="input"/>. <paramref name="labelColumnName"/> names the key-typed label column whose type
    /// the predicted key takes; when <paramref name="input"/> has no such column (scoring without labels) a stand-in key type of the
    /// classes, whose key values are <paramref name="classNames"/>, is used.</summary>
    internal static TransformerChain<ITransformer> Fit(MLContext ml, IDataView input, byte[] onnx, IReadOnlyList<string> classNames, InputSize size,
        string imageColumn, string resizedColumn, string labelColumnName, string scoreColumnName, string predictedLabelColumnName, int? device, bool fallbackToCpu)
    {
        var t = ml.Transforms;
        var onnxOutputs = ModelProto.Parser.ParseFrom(onnx).Graph.Output.Select(o => o.Name);
        var features = ImagePixels.Chain(t, imageColumn, size, resizedColumn, EncoderOnnxNames.Pixels, onto: new EstimatorChain<ITransformer>())
            .Append<ITransformer>(t.ApplyOnnxModel(new MemoryStream(onnx, writable: false), device, fallbackToCpu))
            .Fit(input);
        var featureSchema = features.GetOutputSchema(input.Schema);
        if (featureSchema.GetColumnOrNull(labelColumnName) is not { Type: KeyDataViewType })
            featureSchema = WithLabel(ml, featureSchema, labelColumnName, classNames);
        var predictor = SoftmaxArgMax(ml, featureSchema, classNames, labelColumnName, scoreColumnName, predictedLabelColumnName);
        var temporary = onnxOutputs.Append(resizedColumn).Append(EncoderOnnxNames.Pixels).Distinct().ToArray();
        var scored = predictor.Transform(features.Transform(input));
        return features.Append(predictor).Append<ITransformer>(t.DropColumns(temporary).Fit(scored));
    }

    /// <summary><paramref name="schema"/> plus a key column <paramref name="name"/> whose key values are <paramref name="classNames"/> in order
    /// (class i is key i + 1): the type <c>MapValueToKey</c> gives a label of those values, taken from ML.NET itself.</summary>
    static DataViewSchema WithLabel(MLContext ml, DataViewSchema schema, string name, IReadOnlyList<string> classNames)
    {
        var names = ml.Data.LoadFromEnumerable(classNames.Select(n => new KeyName { Name = n }));
        var key = ml.Transforms.Conversion.MapValueToKey(nameof(KeyName.Name), keyData: names).Fit(names).GetOutputSchema(names.Schema)[nameof(KeyName.Name)];
        var builder = new DataViewSchema.Builder();
        builder.AddColumns(schema.Where(c => c.Name != name));
        builder.AddColumn(name, key.Type, key.Annotations);
        return builder.ToSchema();
    }

    sealed class KeyName { public string Name { get; set; } = ""; }

    /// <summary>
    /// ML.NET's own multiclass prediction transformer over the fine-tuned logits, with a <see cref="MaximumEntropyModelParameters"/> of
    /// identity weights and zero bias: its <c>Score</c> is softmax(logits) and its <c>PredictedLabel</c> the arg-max as a key of the label's
    /// type (key values = class names). Nothing is fitted: ML.NET has no public constructor for fixed model parameters and no built-in
    /// transform from an ONNX arg-max to a scalar key (ONNX outputs always become vectors; its scalar outputs are not supported), so the
    /// internal constructors are called (ML.NET 5.0.1, checked by the tests). Save/Load use ML.NET's own serialisation of these types.
    /// </summary>
    static ITransformer SoftmaxArgMax(MLContext ml, DataViewSchema schema, IReadOnlyList<string> classNames, string labelColumnName, string scoreColumnName, string predictedLabelColumnName)
    {
        int c = classNames.Count;
        var logits = schema[EncoderOnnxNames.Logits];
        if (logits.Type is not VectorDataViewType { Size: var n } || n != c)
            throw new InvalidOperationException($"The exported classifier gives {logits.Type} logits for {c} classes");
        var weights = Enumerable.Range(0, c).Select(k => { var row = new float[c]; row[k] = 1f; return new VBuffer<float>(c, row); }).ToArray();
        const BindingFlags internalCtor = BindingFlags.Instance | BindingFlags.NonPublic | BindingFlags.Public;
        var parametersCtor = typeof(MaximumEntropyModelParameters).GetConstructor(internalCtor, null,
            [typeof(IHostEnvironment), typeof(VBuffer<float>[]), typeof(float[]), typeof(int), typeof(int), typeof(string[]), typeof(ModelStatisticsBase)], null)
            ?? throw new NotSupportedException($"ML.NET {typeof(MLContext).Assembly.GetName().Version}: MaximumEntropyModelParameters has no (env, weights, bias, ...) constructor");
        var parameters = (MaximumEntropyModelParameters)parametersCtor.Invoke([ml, weights, new float[c], c, c, classNames.ToArray(), null]);
        var transformerCtor = typeof(MulticlassPredictionTransformer<MaximumEntropyModelParameters>).GetConstructor(internalCtor, null,
            [typeof(IHostEnvironment), typeof(MaximumEntropyModelParameters), typeof(DataViewSchema), typeof(string), typeof(string), typeof(string), typeof(string)], null)
            ?? throw new NotSupportedException($"ML.NET {typeof(MLContext).Assembly.GetName().Version}: MulticlassPredictionTransformer has no (env, model, schema, ...) constructor");
        return (ITransformer)transformerCtor.Invoke([ml, parameters, schema, EncoderOnnxNames.Logits, labelColumnName, scoreColumnName, predictedLabelColumnName]);
    }
}

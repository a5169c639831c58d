using System.Runtime.InteropServices;
using Google.Protobuf;
using Onnx;

namespace MaeMl.Onnx;

/// <summary>
/// A small writer of ONNX graphs over OnnxSharp's protobuf types: float and int64 initializers, nodes with generated
/// unique names, typed inputs and outputs whose dimensions are numbers or symbolic names (dynamic), and the model
/// wrapper with its opset. It does no shape inference; the caller builds a valid graph.
/// </summary>
internal sealed class OnnxGraphBuilder
{
    /// <summary>IR version written into models (ONNX 1.12+, readable by every supported ONNX Runtime).</summary>
    public const long IrVersion = 8;

    readonly GraphProto graph;
    readonly HashSet<string> names = new(StringComparer.Ordinal);
    int counter;

    /// <summary>An empty graph named <paramref name="graphName"/>.</summary>
    public OnnxGraphBuilder(string graphName) => graph = new GraphProto { Name = graphName };

    /// <summary>Continues an existing graph (e.g. an exported encoder, to add a head): its names are reserved.</summary>
    public OnnxGraphBuilder(GraphProto existing)
    {
        graph = existing;
        foreach (var name in existing.Initializer.Select(i => i.Name).Concat(existing.Input.Select(i => i.Name)).Concat(existing.Output.Select(o => o.Name))
                     .Concat(existing.Node.SelectMany(n => n.Output.Append(n.Name))))
            names.Add(name);
    }

    /// <summary>The graph being built.</summary>
    public GraphProto Graph => graph;

    /// <summary>Nodes added so far.</summary>
    public int NodeCount => graph.Node.Count;

    /// <summary>A name not used yet, from a readable stem.</summary>
    public string UniqueName(string stem)
    {
        var name = stem;
        while (!names.Add(name)) name = $"{stem}_{++counter}";
        return name;
    }

    /// <summary>A float32 initializer (the weights), stored as little-endian raw data.</summary>
    public string Initializer(string name, ReadOnlySpan<float> values, params long[] dims)
    {
        long count = dims.Aggregate(1L, (a, b) => a * b);
        if (count != values.Length) throw new ArgumentException($"Initializer '{name}': {values.Length} values for shape [{string.Join(", ", dims)}]");
        if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException("ONNX raw tensor data is little-endian");
        var tensor = new TensorProto { Name = UniqueName(name), DataType = (int)TensorProto.Types.DataType.Float, RawData = ByteString.CopyFrom(MemoryMarshal.AsBytes(values)) };
        tensor.Dims.AddRange(dims);
        graph.Initializer.Add(tensor);
        return tensor.Name;
    }

    /// <summary>An int64 initializer; no dims makes a scalar, otherwise a 1-D tensor of the values.</summary>
    public string Int64s(string name, long[] values, bool scalar = false)
    {
        if (scalar && values.Length != 1) throw new ArgumentException("A scalar holds exactly one value");
        var tensor = new TensorProto { Name = UniqueName(name), DataType = (int)TensorProto.Types.DataType.Int64 };
        tensor.Int64Data.AddRange(values);
        if (!scalar) tensor.Dims.Add(values.Length);
        graph.Initializer.Add(tensor);
        return tensor.Name;
    }

    /// <summary>A float scalar initializer.</summary>
    public string Scalar(string name, float value)
    {
        var tensor = new TensorProto { Name = UniqueName(name), DataType = (int)TensorProto.Types.DataType.Float };
        tensor.FloatData.Add(value);
        graph.Initializer.Add(tensor);
        return tensor.Name;
    }

    /// <summary>Adds a node with one output named from <paramref name="output"/> (made unique) and returns that name.</summary>
    public string Node(string opType, string[] inputs, string output, params AttributeProto[] attributes) =>
        Node(opType, inputs, [output], attributes)[0];

    /// <summary>Adds a node with several outputs; returns their (unique) names.</summary>
    public string[] Node(string opType, string[] inputs, string[] outputs, params AttributeProto[] attributes)
    {
        var node = new NodeProto { OpType = opType, Name = UniqueName($"{opType}_{graph.Node.Count}") };
        node.Input.AddRange(inputs);
        var outNames = outputs.Select(UniqueName).ToArray();
        node.Output.AddRange(outNames);
        node.Attribute.AddRange(attributes);
        graph.Node.Add(node);
        return outNames;
    }

    /// <summary>Declares a float graph input; each dim is an <see cref="int"/>/<see cref="long"/> size or a <see cref="string"/> symbolic (dynamic) name.</summary>
    public string Input(string name, params object[] dims)
    {
        if (!names.Add(name)) throw new ArgumentException($"Name '{name}' is already used in the graph");
        graph.Input.Add(ValueInfo(name, dims));
        return name;
    }

    /// <summary>Makes <paramref name="value"/> a graph output called <paramref name="name"/> (adding an Identity when the names differ).</summary>
    public void Output(string value, string name, params object[] dims) => Output(value, name, TensorProto.Types.DataType.Float, dims);

    /// <summary>As <see cref="Output(string, string, object[])"/> for an output of another element type (e.g. int64 class ids).</summary>
    public void Output(string value, string name, TensorProto.Types.DataType elementType, params object[] dims)
    {
        if (value != name)
        {
            if (!names.Add(name)) throw new ArgumentException($"Name '{name}' is already used in the graph");
            var node = new NodeProto { OpType = "Identity", Name = UniqueName($"Identity_{graph.Node.Count}") };
            node.Input.Add(value);
            node.Output.Add(name);
            graph.Node.Add(node);
        }
        graph.Output.Add(ValueInfo(name, dims, elementType));
    }

    static ValueInfoProto ValueInfo(string name, object[] dims, TensorProto.Types.DataType elementType = TensorProto.Types.DataType.Float)
    {
        var shape = new TensorShapeProto();
        foreach (var d in dims)
        {
            shape.Dim.Add(d switch
            {
                string symbol => new TensorShapeProto.Types.Dimension { DimParam = symbol },
                int size => new TensorShapeProto.Types.Dimension { DimValue = size },
                long size => new TensorShapeProto.Types.Dimension { DimValue = size },
                _ => throw new ArgumentException($"Dimension of '{name}' must be a number or a name, got {d}"),
            });
        }
        return new ValueInfoProto
        {
            Name = name,
            Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = (int)elementType, Shape = shape } },
        };
    }

    /// <summary>The model: this graph, the default-domain opset, producer and metadata.</summary>
    public ModelProto ToModel(long opset, IReadOnlyDictionary<string, string>? metadata = null, string? docString = null)
    {
        var model = new ModelProto
        {
            IrVersion = IrVersion,
            ProducerName = "MaeMl",
            ProducerVersion = typeof(OnnxGraphBuilder).Assembly.GetName().Version?.ToString() ?? "",
            Graph = graph,
            DocString = docString ?? "",
        };
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = opset });
        if (metadata is not null)
            foreach (var (key, value) in metadata) model.MetadataProps.Add(new StringStringEntryProto { Key = key, Value = value });
        return model;
    }

    // ---------------------------------------------------------------- attributes

    /// <summary>An INT attribute.</summary>
    public static AttributeProto Attr(string name, long value) => new() { Name = name, Type = AttributeProto.Types.AttributeType.Int, I = value };
    /// <summary>A FLOAT attribute.</summary>
    public static AttributeProto Attr(string name, float value) => new() { Name = name, Type = AttributeProto.Types.AttributeType.Float, F = value };
    /// <summary>An INTS attribute (a list, even of one value).</summary>
    public static AttributeProto Ints(string name, params long[] values)
    {
        var a = new AttributeProto { Name = name, Type = AttributeProto.Types.AttributeType.Ints };
        a.Ints.AddRange(values);
        return a;
    }
}
